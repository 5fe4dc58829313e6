//! DescribeTelCdr: the request (batches of SessionIds, or one callee's phone), the reply, and
//! what one call record says. Pure: the client sends what [`CdrQuery::body`] builds, and
//! [`parse_reply`] reads what came back.
//!
//! API facts (shared/CCC-OUTCOMES.md §1): `StartTimeStamp`/`EndTimeStamp` in Unix **seconds**,
//! required even with a filter, span under 90 days, reaching back at most ~180 days; `SdkAppId`,
//! `PageSize` (at most 100) and `PageNumber` (from 0) required; `TelCdrList` is the current list
//! (`TelCdrs` is deprecated and read only when the other is absent).

use serde::{Deserialize, Serialize};

use crate::ccc::CallError;

pub const ACTION: &str = "DescribeTelCdr";
/// SessionIds per request, and records per page.
pub const PAGE_SIZE: usize = 100;
/// A query's window starts this long before the oldest send time in it.
pub const LEAD_SECS: i64 = 5 * 60;
/// The longest window asked for: under the documented 90 days, with a day's margin.
pub const MAX_SPAN_SECS: i64 = 89 * 24 * 3600;
/// How far back the service keeps records (documented "about 180 days"; a day's margin).
pub const MAX_AGE_SECS: i64 = 179 * 24 * 3600;

/// What to ask for: either these sessions, or every call to/from these phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Sessions(Vec<String>),
    Phones(Vec<String>),
}

/// One page of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrQuery {
    pub sdk_app_id: u64,
    /// Unix seconds.
    pub start: i64,
    /// Unix seconds.
    pub end: i64,
    pub filter: Filter,
    pub page: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    start_time_stamp: i64,
    end_time_stamp: i64,
    sdk_app_id: u64,
    page_size: usize,
    page_number: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phones: Option<&'a [String]>,
}

impl CdrQuery {
    /// The window for sessions sent at `oldest_sent`..: from five minutes before the oldest to
    /// `now`, cut to under 90 days (and never starting before the service's retention).
    pub fn window(oldest_sent_secs: i64, now_secs: i64) -> (i64, i64) {
        let start = (oldest_sent_secs - LEAD_SECS).max(now_secs - MAX_AGE_SECS);
        let end = now_secs.min(start + MAX_SPAN_SECS).max(start + 1);
        (start, end)
    }

    pub fn body(&self) -> Vec<u8> {
        let (session_ids, phones) = match &self.filter {
            Filter::Sessions(s) => (Some(s.as_slice()), None),
            Filter::Phones(p) => (None, Some(p.as_slice())),
        };
        let body = Body {
            start_time_stamp: self.start,
            end_time_stamp: self.end,
            sdk_app_id: self.sdk_app_id,
            page_size: PAGE_SIZE,
            page_number: self.page,
            session_ids,
            phones,
        };
        // A struct of numbers and strings always encodes.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The next page's query, if `total` records need more pages than this one.
    pub fn next_page(&self, total: u64) -> Option<CdrQuery> {
        let seen = (self.page as u64 + 1) * PAGE_SIZE as u64;
        (seen < total).then(|| CdrQuery {
            page: self.page + 1,
            ..self.clone()
        })
    }
}

/// The fields of `TelCdrInfo` the dialer keeps. Every field is optional on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CallRecord {
    pub session_id: Option<String>,
    pub caller: Option<String>,
    pub callee: Option<String>,
    /// "呼叫发起时间戳": when the call was initiated, Unix seconds.
    pub time: Option<i64>,
    /// 0 inbound, 1 outbound.
    pub direction: Option<i64>,
    pub call_type: Option<i64>,
    /// Talk time, seconds.
    pub duration: Option<i64>,
    pub end_status: Option<i64>,
    pub end_status_string: Option<String>,
    pub start_timestamp: Option<i64>,
    pub ring_timestamp: Option<i64>,
    pub accept_timestamp: Option<i64>,
    pub ended_timestamp: Option<i64>,
    pub hung_up_side: Option<String>,
    pub sys_hangup_reason: Option<i64>,
    #[serde(rename = "AIAgentId")]
    pub ai_agent_id: Option<i64>,
}

impl CallRecord {
    /// When the call started, as the record says (StartTimestamp, else Time), Unix seconds.
    pub fn started(&self) -> Option<i64> {
        self.start_timestamp
            .filter(|t| *t > 0)
            .or(self.time.filter(|t| *t > 0))
    }
}

/// One page of records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub total: u64,
    pub records: Vec<CallRecord>,
    pub request_id: String,
    /// The reply had a record list field (`TelCdrList` or `TelCdrs`) and a `TotalCount` (or
    /// fewer records than a page): only then is "no record" in it an answer, not a reply we
    /// could not read fully.
    pub complete: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Fields {
    total_count: Option<u64>,
    tel_cdr_list: Option<Vec<CallRecord>>,
    tel_cdrs: Option<Vec<CallRecord>>,
}

/// Read a DescribeTelCdr reply. An API error comes back as [`CallError::Api`]; a body that is
/// not a DescribeTelCdr reply as [`CallError::InDoubt`] (for a query that only means "ask
/// again"); see [`super::reply::read`].
pub fn parse_reply(status: u16, body: &[u8]) -> Result<Page, CallError> {
    let reply = super::reply::read::<Fields>(ACTION, status, body)?;
    let r = reply.fields;
    let listed = r.tel_cdr_list.is_some() || r.tel_cdrs.is_some();
    let records = r.tel_cdr_list.or(r.tel_cdrs).unwrap_or_default();
    // Without TotalCount only a short page shows there is no next one.
    let complete = listed && (r.total_count.is_some() || records.len() < PAGE_SIZE);
    Ok(Page {
        total: r.total_count.unwrap_or(records.len() as u64),
        records,
        request_id: reply.request_id,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_query_names_every_required_field_in_seconds() {
        let q = CdrQuery {
            sdk_app_id: 1_400_000_000,
            start: 1_729_756_000,
            end: 1_729_757_000,
            filter: Filter::Sessions(vec!["s-1".into(), "s-2".into()]),
            page: 0,
        };
        assert_eq!(
            String::from_utf8(q.body()).unwrap(),
            r#"{"StartTimeStamp":1729756000,"EndTimeStamp":1729757000,"SdkAppId":1400000000,"PageSize":100,"PageNumber":0,"SessionIds":["s-1","s-2"]}"#
        );
        let p = CdrQuery {
            filter: Filter::Phones(vec!["008613012345678".into()]),
            ..q
        };
        assert!(String::from_utf8(p.body())
            .unwrap()
            .ends_with(r#""PageNumber":0,"Phones":["008613012345678"]}"#));
    }

    #[test]
    fn pages_follow_until_the_total_is_covered() {
        let q = CdrQuery {
            sdk_app_id: 1,
            start: 0,
            end: 1,
            filter: Filter::Sessions(vec![]),
            page: 0,
        };
        assert_eq!(q.next_page(100), None);
        assert_eq!(q.next_page(0), None);
        let second = q.next_page(101).unwrap();
        assert_eq!(second.page, 1);
        assert_eq!(second.next_page(201).unwrap().page, 2);
        assert_eq!(second.next_page(200), None);
    }

    #[test]
    fn the_window_starts_five_minutes_early_and_spans_under_90_days() {
        let now = 1_800_000_000;
        assert_eq!(CdrQuery::window(now - 60, now), (now - 360, now));
        let (s, e) = CdrQuery::window(now - 100 * 24 * 3600, now);
        assert!(e - s < 90 * 24 * 3600, "span {}", e - s);
        assert_eq!(s, now - 100 * 24 * 3600 - LEAD_SECS);
        // Older than the retention: start at the retention's edge.
        let (s, _) = CdrQuery::window(now - 400 * 24 * 3600, now);
        assert_eq!(s, now - MAX_AGE_SECS);
        // A send "in the future" (clock skew) still gives a non-empty window.
        let (s, e) = CdrQuery::window(now + 1000, now);
        assert!(e > s);
    }

    #[test]
    fn replies_give_records_totals_and_errors() {
        let body = br#"{"Response":{"TotalCount":1,"TelCdrList":[{"SessionId":"s-1","Callee":"008613012345678","Direction":1,"EndStatus":1,"EndStatusString":"ok","Duration":8,"RingTimestamp":1729756300,"AcceptTimestamp":1729756307,"EndedTimestamp":1729756315,"HungUpSide":"user","SysHangupReason":1010,"AIAgentId":9527,"StartTimestamp":1729756299,"SeatUser":{"Mail":"x"},"Unknown":[1]}],"RequestId":"r-1"}}"#;
        let page = parse_reply(200, body).unwrap();
        assert_eq!(page.total, 1);
        assert_eq!(page.request_id, "r-1");
        let r = &page.records[0];
        assert_eq!(r.session_id.as_deref(), Some("s-1"));
        assert_eq!(r.accept_timestamp, Some(1_729_756_307));
        assert_eq!(r.duration, Some(8));
        assert_eq!(r.ai_agent_id, Some(9527));
        assert_eq!(r.sys_hangup_reason, Some(1010));
        assert_eq!(r.started(), Some(1_729_756_299));
        // The deprecated list is read only when the current one is absent.
        let old =
            br#"{"Response":{"TotalCount":1,"TelCdrs":[{"SessionId":"s-9"}],"RequestId":"r"}}"#;
        assert_eq!(
            parse_reply(200, old).unwrap().records[0]
                .session_id
                .as_deref(),
            Some("s-9")
        );
        let empty = br#"{"Response":{"TotalCount":0,"TelCdrList":[],"RequestId":"r"}}"#;
        let page = parse_reply(200, empty).unwrap();
        assert!(page.records.is_empty());
        assert!(page.complete, "an empty list with its count is an answer");
        // No list field at all: zero records read, but not an answer to conclude from.
        let no_list = br#"{"Response":{"TotalCount":0,"RequestId":"r"}}"#;
        let page = parse_reply(200, no_list).unwrap();
        assert!(page.records.is_empty() && !page.complete);
        // A full page without TotalCount may have more after it.
        let rec = r#"{"SessionId":"s"}"#;
        let full = format!(
            r#"{{"Response":{{"TelCdrList":[{}],"RequestId":"r"}}}}"#,
            vec![rec; PAGE_SIZE].join(",")
        );
        assert!(!parse_reply(200, full.as_bytes()).unwrap().complete);
        let short = br#"{"Response":{"TelCdrList":[{"SessionId":"s"}],"RequestId":"r"}}"#;
        assert!(parse_reply(200, short).unwrap().complete);
        let err = br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"no"},"RequestId":"r-2"}}"#;
        assert_eq!(
            parse_reply(401, err).unwrap_err().code(),
            "AuthFailure.SignatureFailure"
        );
        assert!(matches!(
            parse_reply(502, b"<html>"),
            Err(CallError::InDoubt { .. })
        ));
        assert!(matches!(
            parse_reply(500, br#"{"Response":{"RequestId":"r"}}"#),
            Err(CallError::InDoubt { .. })
        ));
    }
}
