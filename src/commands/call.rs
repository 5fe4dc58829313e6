//! `ccc-dialer call`: place one call and print its SessionId. No store, no retry: it answers
//! "does this account work?" and never sends twice.

use anyhow::anyhow;

use crate::cli::CallArgs;
use crate::config::Config;
use crate::contact::Overrides;
use crate::dispatch::{build_request, RequestDefaults};
use crate::exit::{Done, Failure};
use crate::phone;
use crate::policy::{self, Class};
use crate::store::DueContact;

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
    let (client, _mock) = super::connect(&cfg).await?;
    let contact = DueContact {
        id: 0,
        campaign_id: 0,
        callee,
        overrides,
        attempts: 0,
        reschedules: 0,
    };
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
