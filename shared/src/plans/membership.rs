//! Which plan a database or cache follows: the `lifeboat:plan` tag, or the plan that lists it by name.
//!
//! A resource follows exactly one plan. Tagged with one plan and listed in another, it is refused with both
//! names, and so is a tag naming a plan the document does not have: guessing which policy an auditor's database
//! is under is the mistake this exists to prevent. A resource in no plan is reported by the caller (monitor
//! counts it, the tick logs it), never silently backed up under a default.
//!
//! Must never: read AWS. The callers pass the tags the describe calls already returned.

use std::collections::BTreeMap;

use crate::plans::document::Document;

/// The tag that puts a resource in a plan: `lifeboat:plan=<name>`.
pub const PLAN_TAG: &str = crate::core::tags::PLAN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Database,
    Cache,
}

impl Resource {
    pub fn noun(self) -> &'static str {
        match self {
            Resource::Database => "database",
            Resource::Cache => "cache",
        }
    }
}

/// Why a resource's plan cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "{noun} `{id}` is in two plans: tagged `{PLAN_TAG}={tagged}` and listed in plan `{listed}`; it must follow one"
    )]
    TwoPlans {
        noun: &'static str,
        id: String,
        tagged: String,
        listed: String,
    },
    #[error(
        "{noun} `{id}` is tagged `{PLAN_TAG}={tagged}`, and the plan document has no plan `{tagged}` (it has: {known})"
    )]
    UnknownPlan {
        noun: &'static str,
        id: String,
        tagged: String,
        known: String,
    },
}

/// The plan `id` follows, `None` if it is in none.
pub fn plan_of<'d>(
    doc: &'d Document,
    resource: Resource,
    id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Option<&'d str>, MembershipError> {
    let listed = doc.listing(id, resource == Resource::Cache);
    let tagged = tags.get(PLAN_TAG).map(|v| v.trim()).filter(|v| !v.is_empty());
    match (tagged, listed) {
        (None, listed) => Ok(listed),
        (Some(t), Some(l)) if t != l => Err(MembershipError::TwoPlans {
            noun: resource.noun(),
            id: id.to_owned(),
            tagged: t.to_owned(),
            listed: l.to_owned(),
        }),
        (Some(t), _) => match doc.plans.get_key_value(t) {
            Some((name, _)) => Ok(Some(name.as_str())),
            None => Err(MembershipError::UnknownPlan {
                noun: resource.noun(),
                id: id.to_owned(),
                tagged: t.to_owned(),
                known: doc.plans.keys().cloned().collect::<Vec<_>>().join(", "),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::document::parse;

    fn doc() -> Document {
        parse(
            br#"{"format": 1, "plans": {
                "production": {"databases": ["app-prod"], "caches": ["sessions"], "pitr": {"min_days": 7}},
                "staging": {"pitr": {"min_days": 1}},
                "dev": {"no_backups": "recreated from seed data"}}}"#,
        )
        .unwrap()
    }

    fn tags(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_tag_or_a_listing_puts_a_resource_in_a_plan() {
        let d = doc();
        assert_eq!(
            plan_of(&d, Resource::Database, "app-prod", &tags(&[])),
            Ok(Some("production"))
        );
        assert_eq!(
            plan_of(&d, Resource::Database, "app-staging", &tags(&[(PLAN_TAG, "staging")])),
            Ok(Some("staging"))
        );
        // Tagged with the plan that also lists it: one plan, no conflict.
        assert_eq!(
            plan_of(&d, Resource::Database, "app-prod", &tags(&[(PLAN_TAG, "production")])),
            Ok(Some("production"))
        );
        assert_eq!(
            plan_of(&d, Resource::Cache, "sessions", &tags(&[])),
            Ok(Some("production"))
        );
        // A cache list does not place a database of the same name.
        assert_eq!(plan_of(&d, Resource::Database, "sessions", &tags(&[])), Ok(None));
        assert_eq!(
            plan_of(&d, Resource::Database, "orphan", &tags(&[(PLAN_TAG, " ")])),
            Ok(None)
        );
    }

    #[test]
    fn two_plans_or_an_unknown_plan_are_refused_with_the_names() {
        let d = doc();
        let e = plan_of(&d, Resource::Database, "app-prod", &tags(&[(PLAN_TAG, "staging")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "database `app-prod` is in two plans: tagged `lifeboat:plan=staging` and listed in plan `production`; it must follow one"
        );
        let e = plan_of(&d, Resource::Cache, "c1", &tags(&[(PLAN_TAG, "prod")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cache `c1` is tagged `lifeboat:plan=prod`, and the plan document has no plan `prod` (it has: dev, production, staging)"
        );
    }
}
