//! Oversized variables never reach the wire: rows past the intake bounds are skipped with the
//! reason (nothing of the oversized cell stored or echoed), and a request body over 64 KiB is
//! refused before it is sent.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn rows_with_huge_variables_are_skipped_with_a_reason_and_the_rest_dialled() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    let huge_value = "v".repeat(10 << 20);
    let long_name = "n".repeat(1 << 20);
    let many: usize = 100_000;
    let mut csv = format!("callee,var:note,var:{long_name}");
    for i in 0..many {
        csv.push_str(&format!(",var:k{i}"));
    }
    csv.push('\n');
    let blanks = ",".repeat(many);
    // Line 2: a 10 MB value. Line 3: a value under a 1 MB name. Line 4: 100,000 variables.
    csv.push_str(&format!("+8613800000001,{huge_value},{blanks}\n"));
    csv.push_str(&format!("+8613800000002,,x{blanks}\n"));
    csv.push_str(&format!("+8613800000003,,{}\n", ",x".repeat(many)));
    csv.push_str(&format!("+8613800000004,fine,{blanks}\n"));
    s.write_contacts(&csv);

    let out = run_async(&s).await;
    assert_eq!(
        code_of(&out),
        0,
        "{}",
        &stderr_of(&out)[..2000.min(stderr_of(&out).len())]
    );
    let rows = s.results();
    let status: Vec<(u64, &str)> = rows.iter().map(|r| (r.line, r.status.as_str())).collect();
    assert_eq!(
        status,
        [
            (2, "skipped"),
            (3, "skipped"),
            (4, "skipped"),
            (5, "placed")
        ]
    );
    assert!(
        rows[0].error_message.contains("more than 8192"),
        "{:?}",
        rows[0]
    );
    assert!(rows[1]
        .error_message
        .contains("variable name of 1048576 bytes"));
    assert!(rows[2].error_message.contains("more than 64 variables"));
    assert_eq!(mock.stats().requests, 1);
    let results_size = std::fs::metadata(&s.results).unwrap().len();
    assert!(results_size < 4096, "results file of {results_size} bytes");
    assert!(stderr_of(&out).len() < 64 * 1024, "stderr echoes the cells");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_64_kib_is_refused_before_it_is_sent() {
    let mock = mock_with(20, 0, "").await;
    // Each within its own bounds (62 variables of 518 bytes: under 64 variables and 32 KiB,
    // in the config and in the row alike), together more than 64 KiB of request body.
    let value = "x".repeat(515);
    let config_vars: Vec<String> = (0..62).map(|i| format!("c{i:02} = \"{value}\"")).collect();
    let s = Scratch::new(
        &mock.endpoint(),
        &format!("variables = {{ {} }}", config_vars.join(", ")),
        "",
    );
    let header: Vec<String> = (0..62).map(|i| format!("var:r{i:02}")).collect();
    let cells = vec![value.as_str(); 62];
    s.write_contacts(&format!(
        "callee,{}\n{},{}\n",
        header.join(","),
        phone(0),
        cells.join(",")
    ));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows[0].status, "failed");
    assert_eq!(rows[0].error_code, "RequestSizeLimitExceeded");
    assert!(rows[0].error_message.contains("nothing was sent"));
    assert_eq!(mock.stats().requests, 0);
}
