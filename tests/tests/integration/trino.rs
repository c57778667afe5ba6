//! Trino's own function tests, carried over as data (`tests/sql/trino/`), run through the
//! engine in the Trino dialect: every case passes or fails as its record allows, and no case
//! gives a wrong answer it is not recorded with. `TRIBUTARY_BLESS=1` records the outcomes
//! instead (after a change that makes cases pass).

use tributary::query::{QueryEngine, QueryLimits};
use tributary_tests::TempProject;
use tributary_tests::conformance::{self, Outcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trino_function_tests_pass_or_fail_cleanly() {
    let p = TempProject::events("");
    let lake = p.lake().await;
    let engine = QueryEngine::open_with(
        &lake,
        &QueryLimits {
            timeout: Some(std::time::Duration::from_secs(60)),
            // Trino's test session.
            time_zone: Some("Pacific/Apia".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let bless = std::env::var_os("TRIBUTARY_BLESS").is_some();
    let mut tally = conformance::Tally::new();
    let mut worse = Vec::new();
    let mut by_function: std::collections::BTreeMap<String, conformance::FunctionTally> =
        Default::default();
    for (class, mut cases) in conformance::load() {
        let t = tally.entry(class.clone()).or_default();
        for case in cases.iter_mut() {
            let (outcome, why) = conformance::judge(&engine, case).await;
            t[0] += 1;
            t[1 + outcome as usize] += 1;
            if let Some(f) = conformance::called(case["sql"].as_str().unwrap_or("")) {
                let ft = by_function.entry(f).or_default();
                ft.cases += 1;
                ft.pass += usize::from(outcome == Outcome::Pass);
                ft.different += usize::from(outcome >= Outcome::Type);
            }
            let allowed = Outcome::allowed(case["status"].as_str());
            if bless {
                let o = case.as_object_mut().unwrap();
                o.remove("status");
                o.remove("reason");
                if outcome != Outcome::Pass {
                    o.insert("status".into(), outcome.name().into());
                    o.insert("reason".into(), why.clone().into());
                }
            } else if outcome > allowed {
                worse.push(format!(
                    "{class} {}: {} ({}): {why}",
                    case["test"].as_str().unwrap_or(""),
                    case["sql"].as_str().unwrap_or(""),
                    outcome.name()
                ));
            }
        }
        if bless {
            conformance::save(&class, &cases);
        }
    }
    let report = conformance::report(&tally);
    conformance::write_report(&report);
    if bless {
        conformance::write_doc_section("report", &format!("```text\n{report}```\n"));
        let known = engine.function_names();
        conformance::write_doc_section("matrix", &conformance::matrix(&known, &by_function));
    }
    eprintln!("{report}");
    assert!(
        worse.is_empty(),
        "{} cases do worse than recorded:\n{}",
        worse.len(),
        worse.join("\n")
    );
}
