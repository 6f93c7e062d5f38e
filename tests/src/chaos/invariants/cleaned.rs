//! Restore-test resources cleaned: none outlives the janitor's next run. The janitor is monitor's (every monitor
//! run, `functions/monitor/src/handler.rs`): it deletes each restore-test instance, cluster, cache replication
//! group and password secret whose `lifeboat:expires-at` tag has passed by the real clock
//! (`rds::restore::expired_restore_test`). A test's own cleanup deletes them when it finishes; the tag (the
//! test's start plus the stack's expiry hours) is the bound on one whose cleanup did not run. So a resource
//! that expired before the latest janitor run (`Ledger::janitor_runs`) and still exists is a violation, judged
//! by the janitor's own rule and listing calls.

use std::collections::BTreeMap;

use super::{violation, Cloud, Invariant, Ledger, Violation};

pub(super) async fn check(c: &Cloud, ledger: &Ledger, out: &mut Vec<Violation>) {
    let Some(ran) = ledger.janitor_runs.iter().max().copied() else {
        return;
    };
    let left = |what: String| {
        violation(
            Invariant::Cleaned,
            format!("{what} expired before the janitor's run at {ran} and is still there"),
        )
    };
    match lifeboat::rds::selection::discover(&c.rds).await {
        Ok(all) => {
            for d in lifeboat::monitoring::monitor::expired_tests(&all, ran) {
                out.push(left(format!("restore-test {:?} {}", d.kind, d.id)));
            }
        }
        Err(e) => out.push(violation(
            Invariant::Cleaned,
            format!("the databases cannot be listed: {e}"),
        )),
    }
    match lifeboat::rds::test_secrets::expired(&c.sm, ran).await {
        Ok(names) => out.extend(names.into_iter().map(|n| left(format!("restore-test secret {n}")))),
        Err(e) => out.push(violation(
            Invariant::Cleaned,
            format!("the secrets cannot be listed: {e}"),
        )),
    }
    for (id, tags) in test_groups(c).await {
        if lifeboat::rds::restore::expired_restore_test(&tags, ran) {
            out.push(left(format!("restore-test replication group {id}")));
        }
    }
}

/// The cache restore-test replication groups that are not being deleted, with their tags.
async fn test_groups(c: &Cloud) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    let Ok(listed) = c.ec.describe_replication_groups().send().await else {
        return out;
    };
    for g in listed.replication_groups() {
        let Some(id) = g
            .replication_group_id()
            .filter(|id| id.starts_with(lifeboat::caches::restore::TEST_GROUP_PREFIX))
        else {
            continue;
        };
        if let Ok(Some(group)) = lifeboat::caches::restore::group(&c.ec, id).await {
            if group.status != "deleting" {
                out.push((id.to_owned(), group.tags));
            }
        }
    }
    out
}

/// Every restore-test resource there is now, with its status, for [`super::state`].
pub(super) async fn resources(c: &Cloud) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(all) = lifeboat::rds::selection::discover(&c.rds).await {
        for d in all.iter().filter(|d| lifeboat::rds::restore::is_restore_test(&d.tags)) {
            out.push((format!("restore-test database {}", d.id), d.status.clone()));
        }
    }
    for (id, _) in test_groups(c).await {
        out.push((format!("restore-test group {id}"), "present".to_owned()));
    }
    out
}
