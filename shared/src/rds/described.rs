//! What RDS says about an instance or a cluster, and where a restore goes: plain data, no calls.
//!
//! Its own file so that the rules of restore tests (`rds::restore`, which decide placement from a source's) and
//! the adapter that fills these from the describe calls (`rds::instances`, which asks the rules whether a
//! resource is a restore test before it deletes) both stand on it without importing each other. It must never
//! call AWS or decide anything.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// Where a restore goes and what it looks like.
#[derive(Debug, Clone)]
pub struct Placement {
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub instance_class: String,
    pub parameter_group: Option<String>,
    /// For restore tests: no deletion protection, no Multi-AZ.
    pub isolated: bool,
    /// Whether the new instance gets a public address. Always sent to RDS (never left to RDS's default, which is
    /// public in a subnet group with an internet gateway); `false` unless a console request asked for it.
    pub publicly_accessible: bool,
}

/// The status, endpoint and tags of an instance, or `None` if it does not exist.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    pub status: String,
    pub endpoint: Option<(String, u16)>,
    pub tags: BTreeMap<String, String>,
    pub master_user: String,
    pub engine: String,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub parameter_group: Option<String>,
    pub instance_class: String,
}

/// The status, tags, master user and network placement of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub status: String,
    pub tags: BTreeMap<String, String>,
    pub master_user: String,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
}

/// What monitoring reads of a database's backup configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupDetails {
    pub retention_days: Option<i32>,
    pub latest_restorable: Option<DateTime<Utc>>,
    pub encrypted: bool,
    pub deletion_protection: bool,
}
