//! Bad configuration stops the program before any call, with one message naming the file, the
//! key, the value and what was expected, and exit code 2.

use std::path::Path;
use std::process::Command;

use ccc_dialer::config::{Config, Endpoint};

use crate::support::{bin, Scratch};

const MINIMAL: &str = "[campaign]\nsdk_app_id = 1400000000\nai_agent_id = 15\n";

fn err(text: &str) -> String {
    Config::parse(Path::new("dialer.toml"), text)
        .expect_err("config must be refused")
        .to_string()
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = Config::parse(Path::new("dialer.toml"), MINIMAL).unwrap();
    assert_eq!(
        c.tencentcloud.endpoint,
        Endpoint::Url("https://ccc.tencentcloudapi.com".into())
    );
    assert_eq!(c.tencentcloud.region, None);
    assert_eq!(c.rate.requests_per_second, 20.0);
    assert!(
        c.rate.max_in_flight >= 60,
        "20 req/s with 3 s replies needs 60 in flight"
    );
    assert_eq!(c.retry.max_attempts, 3);
    assert_eq!(c.retry.backoff_initial.as_secs(), 2);
    assert_eq!(c.retry.backoff_max.as_secs(), 300);
    assert!(!c.retry.redial_unknown);
}

#[test]
fn the_commented_sample_and_the_demo_config_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = Config::load(&root.join("config/dialer.toml")).unwrap();
    assert_eq!(
        sample.campaign.variables.get("product").map(String::as_str),
        Some("demo")
    );
    assert_eq!(sample.campaign.max_ring_timeout_second, Some(40));
    let demo = Config::load(&root.join("config/demo.toml")).unwrap();
    assert_eq!(demo.tencentcloud.endpoint, Endpoint::Builtin);
    // The demo shows outcomes: tracked, and asked for soon after the short simulated calls.
    assert!(demo.outcomes.enabled);
    assert!(
        demo.outcomes.first_check_after + demo.mock.cdr_delay < std::time::Duration::from_secs(60)
    );
}

#[test]
fn unknown_key_names_the_key_and_the_line() {
    let e = err("[campaign]\nsdk_app_id = 1400000000\nai_agent_id = 15\nmax_ring_timeout = 40\n");
    assert!(
        e.starts_with(
            "dialer.toml: unknown key max_ring_timeout in [campaign] at line 4: expected one of "
        ),
        "{e}"
    );
    assert!(!e.contains("invalid TOML") && !e.contains('`'), "{e}");
    assert!(
        e.contains("max_ring_timeout_second"),
        "lists the expected keys: {e}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let e = err("[campaign]\nsdk_app_id = \"abc\"\nai_agent_id = 15\n");
    assert!(e.contains("line 2") && e.contains("sdk_app_id"), "{e}");
    assert!(e.contains("invalid type: string, expected i64"), "{e}");
    assert!(!e.contains("abc"), "the value is never echoed: {e}");
}

#[test]
fn config_type_errors_and_endpoints_with_user_info_never_echo_the_value() {
    let secret = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
    for text in [
        format!("[campaign]\nsdk_app_id = \"{secret}\"\nai_agent_id = 15\n"),
        format!("[campaign]\nsdk_app_id = 1400000000\nai_agent_id = [\"{secret}\"]\n"),
        format!("[tencentcloud]\nendpoint = \"https://AKIDx:{secret}@ccc.tencentcloudapi.com\"\n{MINIMAL}"),
        format!("[tencentcloud]\nendpoint = \"https://ccc.tencentcloudapi.com/?key={secret}\"\n{MINIMAL}"),
        format!("{MINIMAL}variables = {{ token = [\"{secret}\"] }}\n"),
        format!("{MINIMAL}max_ring_timeout_second = \"{secret}\"\n"),
        // Found by fuzzing: two words left of `=` were quoted as if they were the key.
        format!("[campaign]\nsdk_app_id {secret} = 1\nai_agent_id = 15\n"),
    ] {
        let e = err(&text);
        assert!(!e.contains(secret), "{e}");
        assert!(!e.contains("AKIDx"), "{e}");
    }
    let e = err(&format!(
        "[tencentcloud]\nendpoint = \"https://id:{secret}@host\"\n{MINIMAL}"
    ));
    assert_eq!(
        e,
        "dialer.toml: tencentcloud.endpoint: expected an http(s)://host[:port] URL without user-info (no `name:password@`): credentials come only from the environment (the value is not shown: it may hold a secret)"
    );
}

#[test]
fn a_removed_acquire_timeout_second_is_refused_by_name() {
    // CreateAIAgentCall does not define AcquireTimeoutSecond: sending it would fail every call.
    let e = err(&format!("{MINIMAL}acquire_timeout_second = 5\n"));
    assert!(
        e.starts_with("dialer.toml: campaign.acquire_timeout_second: this setting was removed: CreateAIAgentCall does not define AcquireTimeoutSecond"),
        "{e}"
    );
    assert!(e.contains("delete the line"), "{e}");
}

#[test]
fn out_of_range_values_say_what_was_expected() {
    assert_eq!(
        err("[campaign]\nsdk_app_id = 0\nai_agent_id = 15\n"),
        "dialer.toml: campaign.sdk_app_id = 0: expected a positive integer"
    );
    assert_eq!(
        err(&format!("{MINIMAL}[retry]\nbackoff_initial = \"2 parsecs\"\n")),
        "dialer.toml: retry.backoff_initial = \"2 parsecs\": expected a duration such as \"2s\", \"5m\" or \"1h\": \" parsecs\" is not a unit (one of ms, s, m, h, d, with no space before it)"
    );
    assert_eq!(
        err(&format!("{MINIMAL}[retry.classes]\n\"FailedOperation.CallOutFailed\" = \"sometimes\"\n")),
        "dialer.toml: retry.classes.\"FailedOperation.CallOutFailed\" = \"sometimes\": expected one of \"throttled\", \"capacity\", \"transient\", \"later\", \"next_day\", \"permanent\", \"halt\", \"in_doubt\", \"unrecognised\""
    );
    assert_eq!(
        err(&format!("[tencentcloud]\nendpoint = \"ftp://x\"\n{MINIMAL}")),
        "dialer.toml: tencentcloud.endpoint: expected an http(s)://host[:port] URL without a path (e.g. \"https://ccc.tencentcloudapi.com\"), or \"builtin\" (the value is not shown: it may hold a secret)"
    );
    assert_eq!(
        err(&format!("{MINIMAL}default_country = \"XX\"\n")),
        "dialer.toml: campaign.default_country = \"XX\": expected an ISO 3166 two-letter region code with a telephone country code (e.g. \"CN\", \"DE\", \"US\")"
    );
}

#[test]
fn a_rate_above_the_documented_cap_is_refused_unless_the_quota_is_stated() {
    let e = err(&format!("{MINIMAL}[rate]\nrequests_per_second = 25\n"));
    assert_eq!(
        e,
        "dialer.toml: rate.requests_per_second = 25: expected at most 20, the documented CreateAIAgentCall limit\nhint: if Tencent Cloud granted this account a higher quota, say so with rate.account_quota = N"
    );
    let ok = Config::parse(
        Path::new("dialer.toml"),
        &format!("{MINIMAL}[rate]\nrequests_per_second = 25\naccount_quota = 50\n"),
    )
    .unwrap();
    assert_eq!(ok.rate.requests_per_second, 25.0);
}

#[test]
fn missing_campaign_table_is_named() {
    assert_eq!(
        err("[rate]\nrequests_per_second = 10\n"),
        "dialer.toml: [campaign] = (missing): expected a [campaign] table with at least sdk_app_id and ai_agent_id"
    );
}

#[test]
fn bad_config_exits_2_before_any_call() {
    let s = Scratch::new(
        "http://127.0.0.1:9",
        "",
        "[rate]\nrequests_per_second = 21\n",
    );
    s.write_contacts("callee\n+8613800138000\n");
    let out = s.run();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rate.requests_per_second = 21"), "{stderr}");
    assert!(
        !s.state.exists(),
        "nothing was written before the config was valid"
    );
}

#[test]
fn missing_secret_exits_2_and_names_the_variable() {
    let s = Scratch::new("http://127.0.0.1:9", "", "");
    s.write_contacts("callee\n+8613800138000\n");
    let out = s
        .run_command()
        .env_remove("TENCENTCLOUD_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: TENCENTCLOUD_SECRET_KEY is not set"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_subcommands_and_the_exit_codes() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "status",
        "export",
        "call",
        "mock",
        "Exit codes:",
        "130",
    ] {
        assert!(help.contains(word), "--help mentions {word}: {help}");
    }
}

#[test]
fn an_unreadable_or_malformed_file_is_named_with_the_reason() {
    let e = Config::load(Path::new("/nonexistent/dialer.toml"))
        .expect_err("a missing file is refused")
        .to_string();
    assert!(
        e.starts_with("/nonexistent/dialer.toml: cannot read the config file: "),
        "{e}"
    );
    assert!(e.contains("No such file or directory"), "{e}");

    let e = err("[campaign]\nsdk_app_id = 1400000000\nai_agent_id = \n");
    assert!(e.starts_with("dialer.toml: invalid TOML"), "{e}");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn a_missing_config_file_exits_2_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(dir.path().join("missing.toml"))
        .arg("--contacts")
        .arg(dir.path().join("contacts.csv"))
        .arg("--results")
        .arg(dir.path().join("results.csv"))
        .arg("--state")
        .arg(&state)
        .env("TENCENTCLOUD_SECRET_ID", crate::support::SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", crate::support::SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing.toml: cannot read the config file"),
        "{stderr}"
    );
    assert!(!state.exists());
}

#[test]
fn a_secret_pasted_into_the_config_is_named_but_never_echoed() {
    let e = err(&format!(
        "{MINIMAL}secret_key = \"Gu5t9xGARNpq86cd98joQYCN3EXAMPLE\"\n"
    ));
    assert!(
        e.contains("unknown key secret_key in [campaign] at line 4"),
        "{e}"
    );
    assert!(!e.contains("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"), "{e}");
}

#[test]
fn a_rate_too_small_to_pace_is_refused() {
    let e = err(&format!("{MINIMAL}[rate]\nrequests_per_second = 1e-20\n"));
    assert!(
        e.starts_with("dialer.toml: rate.requests_per_second = 0.00000000000000000001: expected a number from 0.02"),
        "{e}"
    );
}

#[test]
fn no_calling_table_means_no_calling_restrictions_but_an_hour_between_calls_to_one_number() {
    let c = Config::parse(Path::new("dialer.toml"), MINIMAL).unwrap();
    let calling = &c.calling;
    assert!(calling.window.is_unrestricted());
    assert_eq!(
        calling.zone().iana_name(),
        Some("Asia/Shanghai"),
        "CN's one zone"
    );
    assert_eq!(calling.not_after, None);
    assert!(calling.dnc_files.is_empty());
    // The same person is never rung twice within the hour, across campaigns, by default.
    assert_eq!(calling.min_gap, std::time::Duration::from_secs(3600));
    assert!(calling.caller_cooldown.is_zero());
    assert_eq!((calling.max_per_day, calling.caller_daily_cap), (0, 0));
    let us = Config::parse(
        Path::new("dialer.toml"),
        &format!("{MINIMAL}default_country = \"US\"\n"),
    )
    .unwrap();
    assert_eq!(us.calling.zone().iana_name(), Some("UTC"));
}

#[test]
fn a_calling_table_is_read_into_typed_settings() {
    use ccc_dialer::calling::callers::Strategy;
    let c = Config::parse(
        Path::new("/etc/ccc-dialer/dialer.toml"),
        &format!(
            "{MINIMAL}\n[calling]\ntimezone = \"America/New_York\"\n\
             hours.mon = [\"09:00-12:00\", \"14:00-20:00\"]\nhours.sat = []\n\
             blackout_dates = [\"2026-11-26\", 2026-12-25]\n\
             not_after = 2026-12-31T18:00:00-05:00\n\
             dnc_files = [\"dnc.csv\", \"/srv/dnc/national.txt\"]\n\
             max_per_day = 3\ncaller_strategy = \"least_recently_used\"\ncaller_daily_cap = 200\n"
        ),
    )
    .unwrap();
    let calling = &c.calling;
    assert_eq!(calling.zone().iana_name(), Some("America/New_York"));
    assert!(!calling.window.is_unrestricted());
    let monday_10am: jiff::Timestamp = "2026-11-23T15:00:00Z".parse().unwrap();
    assert!(calling.window.is_open(monday_10am, &[]));
    assert!(
        !calling
            .window
            .is_open("2026-11-24T15:00:00Z".parse().unwrap(), &[]),
        "tuesday"
    );
    assert_eq!(
        calling.not_after,
        Some("2026-12-31T23:00:00Z".parse().unwrap())
    );
    assert_eq!(
        calling.dnc_files,
        [
            Path::new("/etc/ccc-dialer/dnc.csv"),
            Path::new("/srv/dnc/national.txt")
        ]
    );
    assert_eq!(
        calling.min_gap.as_secs(),
        4 * 3600,
        "default when the table is present"
    );
    assert_eq!(calling.caller_cooldown.as_secs(), 600);
    assert_eq!(calling.max_per_day, 3);
    assert_eq!(calling.caller_strategy, Strategy::LeastRecentlyUsed);
    assert_eq!(calling.caller_daily_cap, 200);
}

#[test]
fn the_sample_calling_table_is_valid_when_uncommented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = std::fs::read_to_string(root.join("config/dialer.toml")).unwrap();
    let start = sample
        .find("# [calling]")
        .expect("dialer.toml documents [calling]");
    let uncommented: String = sample[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| {
            format!(
                "{}\n",
                l.strip_prefix('#').unwrap_or(l).trim_start_matches(' ')
            )
        })
        .collect();
    let c = Config::parse(
        &root.join("config/dialer.toml"),
        &format!("{MINIMAL}\n{uncommented}"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert!(!c.calling.window.is_unrestricted(), "{uncommented}");
}

#[test]
fn bad_calling_values_say_what_was_expected() {
    let calling = |body: &str| {
        err(&format!(
            "{MINIMAL}[calling]\ntimezone = \"Asia/Shanghai\"\n{body}\n"
        ))
    };
    assert_eq!(
        err(&format!("{MINIMAL}[calling]\ntimezone = \"Asia/Shangai\"\n")),
        "dialer.toml: calling.timezone = \"Asia/Shangai\": expected an IANA time zone name (e.g. \"Asia/Shanghai\", \"America/New_York\", \"UTC\")"
    );
    assert_eq!(
        err(&format!("{MINIMAL}default_country = \"US\"\n[calling]\nmin_gap = \"1h\"\n")),
        "dialer.toml: calling.timezone = (missing): expected the campaign's IANA time zone: campaign.default_country \"US\" has several"
    );
    assert_eq!(
        calling("hours.mon = [\"09:00-12:00\", \"22:00-02:00\"]"),
        "dialer.toml: calling.hours.mon[1] = \"22:00-02:00\": expected a range whose start is before its end; a range past midnight is two ranges, e.g. \"22:00-24:00\" on one day and \"00:00-02:00\" on the next"
    );
    assert_eq!(
        calling("hours.tue = [\"9-12\"]"),
        "dialer.toml: calling.hours.tue[0] = \"9-12\": expected a range \"HH:MM-HH:MM\" of local time (e.g. \"09:00-12:00\")"
    );
    assert_eq!(
        calling("hours = {}"),
        "dialer.toml: calling.hours = (no ranges): expected at least one day with a range (e.g. hours.mon = [\"09:00-12:00\"]); remove calling.hours to call at any time"
    );
    assert_eq!(
        calling("blackout_dates = [\"2026-10-01\", \"2026-13-01\"]"),
        "dialer.toml: calling.blackout_dates[1] = \"2026-13-01\": expected a local date \"YYYY-MM-DD\" (e.g. \"2026-10-01\")"
    );
    assert_eq!(
        calling("not_after = \"2026-12-31T18:00:00\""),
        "dialer.toml: calling.not_after = \"2026-12-31T18:00:00\": expected an RFC 3339 date and time with its offset (e.g. \"2026-12-31T18:00:00+08:00\")"
    );
    assert_eq!(
        calling("min_gap = \"4 hours\""),
        "dialer.toml: calling.min_gap = \"4 hours\": expected a duration such as \"2s\", \"5m\" or \"1h\": \" hours\" is not a unit (one of ms, s, m, h, d, with no space before it)"
    );
    assert_eq!(
        calling("caller_cooldown = \"10\""),
        "dialer.toml: calling.caller_cooldown = \"10\": expected a duration such as \"2s\", \"5m\" or \"1h\": 10 needs its unit, one of ms, s, m, h, d (e.g. \"10s\")"
    );
    assert_eq!(
        calling("max_per_day = -1"),
        "dialer.toml: calling.max_per_day = -1: expected an integer from 0 to 1000 (0 = no cap)"
    );
    assert_eq!(
        calling("caller_daily_cap = 2000000"),
        "dialer.toml: calling.caller_daily_cap = 2000000: expected an integer from 0 to 1000000 (0 = no cap)"
    );
    assert_eq!(
        calling("caller_strategy = \"random\""),
        "dialer.toml: calling.caller_strategy = \"random\": expected \"round_robin\" or \"least_recently_used\""
    );
}

#[test]
fn unknown_calling_keys_and_days_are_refused_by_name() {
    let e = err(&format!("{MINIMAL}[calling]\nwindow = \"9-5\"\n"));
    assert!(
        e.starts_with("dialer.toml: unknown key window in [calling] at line "),
        "{e}"
    );
    assert!(e.contains("hours"), "{e}");
    let e = err(&format!(
        "{MINIMAL}[calling.hours]\nmonday = [\"09:00-12:00\"]\n"
    ));
    assert!(
        e.contains("unknown key monday in [calling.hours]") && e.contains("mon, tue"),
        "{e}"
    );
}

#[test]
fn a_delay_too_long_to_schedule_is_refused() {
    let e = err(&format!("{MINIMAL}[retry]\nlater_delay = \"100000d\"\n"));
    assert_eq!(
        e,
        "dialer.toml: retry.later_delay = \"100000d\": expected a duration of at most 30d"
    );
    let e = err(&format!("{MINIMAL}[run]\ngrace_period = \"2h\"\n"));
    assert!(
        e.contains("run.grace_period = \"2h\": expected a duration of at most 1h"),
        "{e}"
    );
}

#[test]
fn the_config_holds_callers_and_variables_to_the_apis_rules() {
    // One set of checks for the config, a campaign's settings and a contacts row: what the
    // API refuses, the config refuses too (it took `1+2` as a caller and any variable).
    let e = err(&format!("{MINIMAL}callers = [\"1+2\"]\n"));
    assert!(
        e.starts_with("dialer.toml: campaign.callers[0] = \"1+2\": expected a caller number"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}variables = {{ \"\" = \"x\" }}\n"));
    assert!(
        e.starts_with(
            "dialer.toml: campaign.variables.\"\": expected a variable name, not an empty one"
        ),
        "{e}"
    );
    let secret = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
    let e = err(&format!(
        "{MINIMAL}variables = {{ script = \"{secret}{}\" }}\n",
        "v".repeat(9000)
    ));
    assert!(
        e.starts_with(
            "dialer.toml: campaign.variables.\"script\": expected a value of at most 8192 bytes"
        ),
        "{e}"
    );
    assert!(!e.contains(secret), "never the value: {e}");
    let many: String = (0..65).map(|i| format!("k{i} = \"x\"\n")).collect();
    let e = err(&format!("{MINIMAL}[campaign.variables]\n{many}"));
    assert!(e.contains("expected at most 64 variables"), "{e}");
    // And the API's settings and the config agree on the same values.
    for callers in ["[\"+8613800138000\"]", "[\"008601012345678\"]"] {
        Config::parse(
            Path::new("dialer.toml"),
            &format!("{MINIMAL}callers = {callers}\n"),
        )
        .expect("a valid caller");
    }
}
