//! Contacts intake: any bytes as a contacts file. Never a panic; when the file has a header,
//! every data row comes out exactly once, in order, with a line number past the header and
//! strictly increasing (the store keeps one result per line), and a skipped row carries a
//! reason and no oversized callee.
#![no_main]

use ccc_dialer::config::CalleeFormat;
use ccc_dialer::intake::{self, IntakeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = if data.first().is_some_and(|b| b & 1 == 1) {
        CalleeFormat::E164
    } else {
        CalleeFormat::DoubleZero
    };
    let opts = IntakeOptions {
        default_country: "CN".into(),
        callee_format: format,
    };
    let mut rows = Vec::new();
    let result = intake::read(std::path::Path::new("fuzz.csv"), data, &opts, |batch| {
        rows.extend(batch);
        Ok(())
    });
    let Ok(summary) = result else {
        return;
    };
    assert_eq!(summary.rows, rows.len() as u64, "every row comes out once");
    let mut last = 1;
    for r in &rows {
        assert!(r.line > last, "line {} after line {last}", r.line);
        last = r.line;
        match &r.skip_reason {
            Some(reason) => {
                assert!(!reason.is_empty());
                assert!(
                    r.callee.chars().count() <= 65,
                    "a skipped callee is shortened"
                );
            }
            None => {
                assert!(!r.callee.is_empty(), "a dialable row has a callee");
                assert!(
                    r.callee.bytes().all(|b| b.is_ascii_digit() || b == b'+'),
                    "a dialable callee is normalised: {:?}",
                    r.callee
                );
                assert!(r.overrides.variables.len() <= intake::MAX_VARIABLES);
            }
        }
    }
});
