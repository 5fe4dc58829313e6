//! The lines benchmark's setting in simulated time, many seeds over (`lines::sim`): 10 lines,
//! log-normal calls (median 5 s, sigma 0.5, mean 5.67 s), 300 contacts, replies after 50 ms,
//! 20 requests a second; the ideal is 300 x 5.67 / 10 = 170 s. The wall is to the last call's
//! start. Seconds of simulated time cost milliseconds, so the spread between seeds shows.
//!
//! `cargo bench --profile dev --bench lines_sim [-- MODE... [--seeds N]]`, MODE among
//! `learned configured outcomes outcomes-periodic outcomes-late` (all by default).

use ccc_dialer::lines::sim::{Reporting, Setup, Sim};

struct Mode {
    name: &'static str,
    setup: fn(u64) -> Setup,
    /// Goals: refusals share, wall / ideal.
    goals: (f64, f64),
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut seeds = 20u64;
    let mut wanted = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seeds" {
            seeds = it.next().and_then(|n| n.parse().ok()).unwrap_or(seeds);
        } else {
            wanted.push(a.clone());
        }
    }
    let modes = [
        Mode {
            name: "learned",
            setup: Setup::benchmark,
            goals: (0.10, 1.25),
        },
        Mode {
            name: "configured",
            setup: |seed| Setup {
                configured: Some(10),
                ..Setup::benchmark(seed)
            },
            goals: (0.10, 1.25),
        },
        Mode {
            name: "outcomes",
            setup: |seed| Setup {
                reporting: Some(Reporting::every_second(0.0)),
                ..Setup::benchmark(seed)
            },
            goals: (0.02, 1.10),
        },
        Mode {
            name: "outcomes-periodic",
            setup: |seed| Setup {
                reporting: Some(Reporting {
                    busy_checks: false,
                    ..Reporting::every_second(0.0)
                }),
                ..Setup::benchmark(seed)
            },
            goals: (0.02, 1.10),
        },
        Mode {
            name: "outcomes-late",
            setup: |seed| Setup {
                reporting: Some(Reporting::every_second(2.0)),
                ..Setup::benchmark(seed)
            },
            goals: (0.02, 1.10),
        },
    ];
    println!("| mode | seeds | refusals mean (max) | wall / ideal mean (max) | utilisation mean | both goals met | goals |");
    println!("|---|---|---|---|---|---|---|");
    for m in &modes {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == m.name) {
            continue;
        }
        let (mut shares, mut walls, mut uses, mut met) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for seed in 0..seeds {
            let setup = (m.setup)(1000 + seed);
            let ideal = setup.ideal();
            let lines = setup.lines;
            let f = Sim::new(setup).run();
            let (share, wall) = (f.refused_share(), f.last_start / ideal);
            met += usize::from(share <= m.goals.0 && wall <= m.goals.1);
            shares.push(share);
            walls.push(wall);
            uses.push(f.utilisation(lines));
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {seeds} | {:.1}% ({:.1}%) | {:.3} ({:.3}) | {:.0}% | {met} of {seeds} | <= {:.0}%, <= {:.2} x |",
            m.name,
            mean(&shares) * 100.0,
            max(&shares) * 100.0,
            mean(&walls),
            max(&walls),
            mean(&uses) * 100.0,
            m.goals.0 * 100.0,
            m.goals.1
        );
    }
}
