//! Which databases a run works on: an explicit list and/or a tag selector, over instances and Aurora clusters.
//!
//! Tags come from the `TagList` that DescribeDBInstances and DescribeDBClusters already return, so selection
//! costs two paginated calls whatever the fleet size, never one extra call per resource. Instances that are
//! members of an Aurora cluster are not databases of their own: their cluster is.

use std::collections::BTreeMap;

use aws_sdk_rds::Client;
use serde::Serialize;

use crate::core::error::Error;

/// Instance or Aurora cluster: they are snapshotted, restored and described through different APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Instance,
    Cluster,
}

/// A database as the describe calls report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Database {
    pub id: String,
    pub kind: DbKind,
    pub arn: String,
    pub engine: String,
    pub status: String,
    #[serde(skip)]
    pub tags: BTreeMap<String, String>,
    /// For instances: the cluster it belongs to (such instances are never selected on their own).
    #[serde(skip)]
    pub cluster: Option<String>,
    /// Where to connect: the instance endpoint, or the cluster's writer endpoint.
    #[serde(skip)]
    pub endpoint: Option<(String, u16)>,
    /// Other hosts that reach the same data: a cluster's reader endpoint and its member instances' endpoints.
    #[serde(skip)]
    pub aliases: Vec<String>,
    /// The RDS-managed master user secret, when RDS manages the password in Secrets Manager.
    #[serde(skip)]
    pub master_secret_arn: Option<String>,
}

impl Database {
    /// The Secrets Manager secret holding this database's credentials: the `lifeboat:secret` tag, else the
    /// RDS-managed master secret.
    pub fn secret_id(&self) -> Option<&str> {
        self.tags
            .get(crate::core::tags::SECRET)
            .map(String::as_str)
            .or(self.master_secret_arn.as_deref())
    }
}

/// `key=value` (or just `key`, meaning any value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSelector {
    pub key: String,
    pub value: Option<String>,
}

impl TagSelector {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (key, value) = match raw.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
            None => (raw.trim(), None),
        };
        if key.is_empty() {
            return Err("expected `key=value` or `key`, e.g. `lifeboat:backup=true`".into());
        }
        if key.len() > 128 {
            return Err("a tag key has at most 128 characters".into());
        }
        Ok(Self {
            key: key.to_owned(),
            value,
        })
    }

    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match (tags.get(&self.key), &self.value) {
            (Some(v), Some(want)) => v.eq_ignore_ascii_case(want),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The union of an explicit list and a tag selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub databases: Vec<String>,
    pub tag: Option<TagSelector>,
}

/// What selection found: the databases to work on, and the explicitly named ones that do not exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    pub databases: Vec<Database>,
    pub missing: Vec<String>,
}

/// Picks the databases a selector names. Pure: tested without AWS.
pub fn select(all: &[Database], selector: &Selector) -> Selection {
    let mut databases: Vec<Database> = all
        .iter()
        .filter(|db| db.cluster.is_none())
        .filter(|db| {
            selector.databases.iter().any(|name| name == &db.id)
                || selector.tag.as_ref().is_some_and(|t| t.matches(&db.tags))
        })
        .cloned()
        .collect();
    databases.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    let missing = selector
        .databases
        .iter()
        .filter(|name| !all.iter().any(|db| db.cluster.is_none() && &&db.id == name))
        .cloned()
        .collect();
    Selection { databases, missing }
}

fn tags_of(list: Option<&[aws_sdk_rds::types::Tag]>) -> BTreeMap<String, String> {
    list.unwrap_or_default()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

/// Lists every instance and cluster in the client's region, with their tags.
pub async fn discover(rds: &Client) -> Result<Vec<Database>, Error> {
    let mut out = Vec::new();
    let mut pages = rds.describe_db_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeDBInstances", e))?;
        for i in page.db_instances() {
            let Some(id) = i.db_instance_identifier() else { continue };
            out.push(Database {
                id: id.to_owned(),
                kind: DbKind::Instance,
                arn: i.db_instance_arn().unwrap_or_default().to_owned(),
                engine: i.engine().unwrap_or_default().to_owned(),
                status: i.db_instance_status().unwrap_or_default().to_owned(),
                tags: tags_of(Some(i.tag_list())),
                cluster: i.db_cluster_identifier().map(str::to_owned),
                endpoint: i
                    .endpoint()
                    .and_then(|e| Some((e.address()?.to_owned(), u16::try_from(e.port()?).ok()?))),
                aliases: Vec::new(),
                master_secret_arn: i.master_user_secret().and_then(|s| s.secret_arn()).map(str::to_owned),
            });
        }
    }
    let mut pages = rds.describe_db_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("DescribeDBClusters", e))?;
        for c in page.db_clusters() {
            let Some(id) = c.db_cluster_identifier() else { continue };
            out.push(Database {
                id: id.to_owned(),
                kind: DbKind::Cluster,
                arn: c.db_cluster_arn().unwrap_or_default().to_owned(),
                engine: c.engine().unwrap_or_default().to_owned(),
                status: c.status().unwrap_or_default().to_owned(),
                tags: tags_of(Some(c.tag_list())),
                cluster: None,
                endpoint: c
                    .endpoint()
                    .and_then(|e| Some((e.to_owned(), u16::try_from(c.port()?).ok()?))),
                aliases: c.reader_endpoint().map(str::to_owned).into_iter().collect(),
                master_secret_arn: c.master_user_secret().and_then(|s| s.secret_arn()).map(str::to_owned),
            });
        }
    }
    add_member_endpoints(&mut out);
    Ok(out)
}

/// A cluster is also reached through each member instance's endpoint.
fn add_member_endpoints(all: &mut [Database]) {
    let members: Vec<(String, String)> = all
        .iter()
        .filter_map(|d| Some((d.cluster.clone()?, d.endpoint.as_ref()?.0.clone())))
        .collect();
    for db in all.iter_mut().filter(|d| d.kind == DbKind::Cluster) {
        db.aliases.extend(
            members
                .iter()
                .filter(|(c, _)| *c == db.id)
                .map(|(_, host)| host.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(id: &str, kind: DbKind, tags: &[(&str, &str)], cluster: Option<&str>) -> Database {
        Database {
            id: id.into(),
            kind,
            arn: format!("arn:aws:rds:us-east-1:123456789012:db:{id}"),
            engine: "postgres".into(),
            status: "available".into(),
            tags: tags.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            cluster: cluster.map(Into::into),
            endpoint: None,
            aliases: Vec::new(),
            master_secret_arn: None,
        }
    }

    fn fleet() -> Vec<Database> {
        vec![
            db("app-prod", DbKind::Instance, &[("lifeboat:backup", "true")], None),
            db("app-staging", DbKind::Instance, &[("lifeboat:backup", "TRUE")], None),
            db("scratch", DbKind::Instance, &[("lifeboat:backup", "false")], None),
            db("untagged", DbKind::Instance, &[], None),
            db("aurora-main", DbKind::Cluster, &[("lifeboat:backup", "true")], None),
            db(
                "aurora-main-1",
                DbKind::Instance,
                &[("lifeboat:backup", "true")],
                Some("aurora-main"),
            ),
        ]
    }

    fn ids(s: &Selection) -> Vec<&str> {
        s.databases.iter().map(|d| d.id.as_str()).collect()
    }

    #[test]
    fn a_cluster_is_also_reached_through_its_members() {
        let mut writer = db("aurora-main-1", DbKind::Instance, &[], Some("aurora-main"));
        writer.endpoint = Some(("aurora-main-1.abc.rds.amazonaws.com".into(), 5432));
        let mut other = db("solo", DbKind::Instance, &[], None);
        other.endpoint = Some(("solo.abc.rds.amazonaws.com".into(), 5432));
        let mut cluster = db("aurora-main", DbKind::Cluster, &[], None);
        cluster.aliases = vec!["aurora-main.cluster-ro-abc.rds.amazonaws.com".into()];
        let mut all = vec![writer, other, cluster];
        add_member_endpoints(&mut all);
        assert_eq!(
            all[2].aliases,
            vec![
                "aurora-main.cluster-ro-abc.rds.amazonaws.com",
                "aurora-main-1.abc.rds.amazonaws.com"
            ]
        );
        assert!(all[1].aliases.is_empty());
    }

    #[test]
    fn tag_selector_picks_tagged_instances_and_clusters_but_not_cluster_members() {
        let sel = Selector {
            databases: vec![],
            tag: Some(TagSelector::parse("lifeboat:backup=true").unwrap()),
        };
        let s = select(&fleet(), &sel);
        assert_eq!(ids(&s), vec!["app-prod", "app-staging", "aurora-main"]);
        assert!(s.missing.is_empty());
    }

    #[test]
    fn explicit_list_adds_untagged_and_reports_missing() {
        let sel = Selector {
            databases: vec!["untagged".into(), "gone".into(), "aurora-main-1".into()],
            tag: Some(TagSelector::parse("lifeboat:backup=true").unwrap()),
        };
        let s = select(&fleet(), &sel);
        assert_eq!(ids(&s), vec!["app-prod", "app-staging", "untagged", "aurora-main"]);
        // A cluster member is not a database of its own, so naming it is reported rather than silently ignored.
        assert_eq!(s.missing, vec!["gone", "aurora-main-1"]);
    }

    #[test]
    fn key_only_selector_matches_any_value() {
        let sel = Selector {
            databases: vec![],
            tag: Some(TagSelector::parse("lifeboat:backup").unwrap()),
        };
        assert_eq!(
            ids(&select(&fleet(), &sel)),
            vec!["app-prod", "app-staging", "scratch", "aurora-main"]
        );
    }

    #[test]
    fn empty_key_is_rejected() {
        assert!(TagSelector::parse("=true").is_err());
    }
}
