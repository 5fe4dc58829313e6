//! `ccc-dialer call`: place one call and print its SessionId. No store, no retry: it answers
//! "does this account work?" and never sends twice. A call is still a call to a person: the
//! config's do-not-call lists and calling window hold for it (`--ignore-window` overrides the
//! window, never the lists).

use anyhow::anyhow;

use crate::calling::gate;
use crate::cli::CallArgs;
use crate::config::Config;
use crate::contact::Overrides;
use crate::dispatch::rules::Rules;
use crate::dispatch::{build_request, RequestDefaults};
use crate::exit::{Done, Failure};
use crate::phone;
use crate::policy::{self, Class};
use crate::store::DueContact;

/// Why the config's calling rules hold a call to `contact` at `now` (its window in the callee's
/// zones, the campaign's start and end), in the config's zone and UTC; `None` when it may go.
pub fn outside_window(rules: &Rules, contact: &DueContact, now: jiff::Timestamp) -> Option<String> {
    let zone = rules.calling.zone();
    let held = gate::campaign_start(rules.calling.not_before, now)
        .and_then(|()| gate::campaign_end(rules.calling.not_after, now))
        .err()
        .or_else(|| rules.window_closed(contact, now).map(|(g, _)| g))?;
    Some(format!("{} ({})", held.describe_in(zone), held.as_str()))
}

pub async fn run(args: CallArgs) -> Result<Done, Failure> {
    let cfg = Config::load(&args.config).map_err(Failure::input)?;
    let callee = phone::normalize(
        &args.callee,
        &cfg.campaign.default_country,
        cfg.campaign.callee_format,
    )
    .map_err(|e| Failure::input(anyhow!("--callee {:?}: {e}", args.callee)))?;
    // A test call is still a call to a person: the config's do-not-call lists hold for it.
    let rules = super::load_rules(&cfg)?;
    if rules.dnc.contains(&callee) {
        return Err(Failure::input(anyhow!(
            "--callee {:?}: {callee} is on a do-not-call list (calling.dnc_files); nothing was sent",
            args.callee
        )));
    }
    let mut overrides = Overrides::default();
    for kv in &args.vars {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Failure::input(anyhow!("--var {kv:?}: expected KEY=VALUE")));
        };
        overrides
            .variables
            .insert(k.trim().to_string(), v.to_string());
    }
    let contact = DueContact {
        id: 0,
        campaign_id: 0,
        callee,
        overrides,
        attempts: 0,
        reschedules: 0,
        line: 0,
    };
    if !args.ignore_window {
        if let Some(why) = outside_window(&rules, &contact, jiff::Timestamp::now()) {
            return Err(Failure::input(anyhow!(
                "--callee {:?}: {why}; nothing was sent
hint: --ignore-window places the call anyway",
                args.callee
            )));
        }
    }
    let (client, _mock) = super::connect(&cfg).await?;
    let request = build_request(&RequestDefaults::from(&cfg.campaign), &contact, 0);
    match client.create_ai_agent_call(&request).await {
        Ok(placed) => {
            crate::say!("{}", placed.session_id);
            crate::tell!(
                "placed: SessionId {} (RequestId {})",
                placed.session_id,
                placed.request_id
            );
            Ok(Done::Ok)
        }
        Err(e) => {
            let class = policy::classify(&e, &cfg.retry.classes);
            let what = match class {
                Class::InDoubt => {
                    "the reply was lost: the call MAY have been placed; do not simply retry"
                }
                Class::Halt => "account-level problem: fix the account or credentials",
                _ => "the call was not placed",
            };
            Err(Failure::other(anyhow!(
                "{e}\n{what} (class {})",
                class.as_str()
            )))
        }
    }
}
