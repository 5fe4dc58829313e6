//! Opt-outs heard by the AI agent: `[dnc] opt_out_tag = { name = "opt_out", value = "yes" }`.
//! A session whose post-call tag matches puts its number on the account's own do-not-call list
//! in the store (with campaign, session and time as the reason), which every campaign's gate
//! checks beside the `[calling] dnc_files` lists (see [`super::dnc::DncLists`]).
//!
//! This module owns the `[dnc]` table and the list's CSV form (`ccc-dialer dnc export`,
//! `GET /v1/dnc`). Pure.

use serde::Deserialize;

use crate::outcomes::tag_rules::{self, RawTagRule, TagRule};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDnc {
    opt_out_tag: Option<RawTagRule>,
}

/// The `[dnc]` table, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DncSettings {
    /// The post-call tag that means "do not call me again".
    pub opt_out_tag: Option<TagRule>,
}

pub(crate) fn validate(raw: RawDnc) -> Result<DncSettings, tag_rules::Invalid> {
    let opt_out_tag = raw
        .opt_out_tag
        .map(|r| tag_rules::validate(&r, "dnc.opt_out_tag", false))
        .transpose()?;
    Ok(DncSettings { opt_out_tag })
}

/// One number on the account's own list, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OwnEntry {
    pub number: String,
    /// Unix ms.
    pub added_at: i64,
    /// `opt_out_tag` (heard by the agent) or another source.
    pub source: String,
    pub campaign_id: Option<i64>,
    pub campaign: Option<String>,
    pub session_id: Option<String>,
    pub reason: String,
}

/// The CSV header of the exported list (the first column is `number`, so the file can be
/// given back as a `[calling] dnc_files` list as it is).
pub const CSV_COLUMNS: [&str; 7] = [
    "number",
    "added_at",
    "source",
    "campaign_id",
    "campaign",
    "session_id",
    "reason",
];

/// The list as CSV text (cells neutralised against spreadsheet formulas).
pub fn to_csv(entries: &[OwnEntry]) -> Result<Vec<u8>, csv::Error> {
    let n = |s: &str| crate::results::cells::neutralise(s).into_owned();
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    for e in entries {
        w.write_record([
            n(&e.number),
            crate::times::rfc3339_millis(e.added_at),
            n(&e.source),
            e.campaign_id.map(|c| c.to_string()).unwrap_or_default(),
            n(e.campaign.as_deref().unwrap_or("")),
            n(e.session_id.as_deref().unwrap_or("")),
            n(&e.reason),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opt_out_tag_is_a_name_and_a_value_without_after() {
        let raw: RawDnc =
            toml::from_str("opt_out_tag = { name = \"opt_out\", value = \"yes\" }").unwrap();
        let s = validate(raw).unwrap();
        let t = s.opt_out_tag.unwrap();
        assert_eq!((t.name.as_str(), t.value.as_str()), ("opt_out", "yes"));
        let raw: RawDnc =
            toml::from_str("opt_out_tag = { name = \"opt_out\", value = \"yes\", after = \"1d\" }")
                .unwrap();
        assert_eq!(validate(raw).unwrap_err().0, "dnc.opt_out_tag.after");
        assert_eq!(validate(RawDnc::default()).unwrap(), DncSettings::default());
    }

    #[test]
    fn the_csv_starts_with_the_number_and_neutralises_formulas() {
        let e = OwnEntry {
            number: "008613800000001".into(),
            added_at: 0,
            source: "opt_out_tag".into(),
            campaign_id: Some(3),
            campaign: Some("=evil".into()),
            session_id: Some("s-1".into()),
            reason: "opt_out=yes".into(),
        };
        let text = String::from_utf8(to_csv(&[e]).unwrap()).unwrap();
        assert_eq!(
            text,
            "number,added_at,source,campaign_id,campaign,session_id,reason\n\
             008613800000001,1970-01-01T00:00:00.000Z,opt_out_tag,3,'=evil,s-1,opt_out=yes\n"
        );
    }
}
