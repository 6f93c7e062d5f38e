//! Sharded caches (cluster mode enabled) in restore tests and in the console's restore: how the restored group
//! is laid out. A sharded source is restored as a sharded group with the snapshot's node groups (shards), no
//! replicas, and a parameter group with cluster mode on (`lifeboat::caches::restore::cluster_parameter_group`: the
//! configured `LIFEBOAT_CACHE_RESTORE_CLUSTER_PARAMETER_GROUP`, else ElastiCache's default cluster-mode group
//! of the snapshot's engine and version). The shard count, engine and version are read from the snapshot by
//! `rdb_copy::describe`, the same call the RDB copy makes.
//!
//! The checks of a sharded group are `lifeboat::caches::check::cluster`'s; `caches::verify` picks them when the
//! test state records shards.

use lifeboat::caches::elasticache::{Cache, CacheKind, CacheSnapshot};
use lifeboat::caches::rdb_copy;
use lifeboat::caches::restore as rules;

use crate::deps::Deps;
use crate::error::RestoreError;
use crate::settings::CACHE_CLUSTER_PARAMETER_GROUP;

/// How a restored group is laid out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// `Some(n)`: cluster mode on, `n` shards. `None`: one node, cluster mode off.
    pub shards: Option<u32>,
    /// The cluster-mode parameter group (only with `shards`).
    pub parameter_group: Option<String>,
}

impl Layout {
    pub fn cluster_mode(&self) -> bool {
        self.shards.is_some()
    }

    /// The node groups of the create request (1 with cluster mode off, where it is ignored).
    pub fn shard_count(&self) -> u32 {
        self.shards.unwrap_or(1)
    }
}

/// A sharded layout of the snapshot `d` (as `rdb_copy::describe` read it): its shards, the parameter group its
/// engine and version call for. Refused, naming the setting, when no cluster-mode parameter group is known.
fn sharded(deps: &Deps, d: &rdb_copy::ExportableSnapshot) -> Result<Layout, RestoreError> {
    sharded_of(deps, &d.cache, &d.name, &d.engine, &d.engine_version, d.shards)
}

/// The sharded layout of `shards` shards of `engine` `version` data (`from` names the snapshot or RDB copy in the
/// refusal).
fn sharded_of(
    deps: &Deps,
    cache: &str,
    from: &str,
    engine: &str,
    version: &str,
    shards: u32,
) -> Result<Layout, RestoreError> {
    let setting = deps.settings.cache.cluster_parameter_group.as_deref();
    let parameter_group = rules::cluster_parameter_group(setting, engine, version).ok_or_else(|| {
        RestoreError::Unsupported(format!(
            "{cache} is sharded and {from} is of {engine} `{version}`, for which Lifeboat knows no default cluster-mode parameter group; set {CACHE_CLUSTER_PARAMETER_GROUP} to a parameter group of that engine version with cluster-enabled yes"
        ))
    })?;
    tracing::info!(cache, from, shards, parameter_group = %parameter_group, "sharded data: restored with cluster mode on");
    Ok(Layout {
        shards: Some(shards),
        parameter_group: Some(parameter_group),
    })
}

/// The layout of a group seeded from a verified RDB copy: one node for one file, else cluster mode with a shard
/// per file (ElastiCache seeds each shard from one file), the parameter group of the copy's engine and version.
pub fn of_copy(deps: &Deps, key: &str, m: &lifeboat::caches::records::RdbManifest) -> Result<Layout, RestoreError> {
    let shards = u32::try_from(m.shards.len()).unwrap_or(u32::MAX);
    if shards <= 1 {
        return Ok(Layout::default());
    }
    sharded_of(deps, &m.cache, key, &m.engine, &m.engine_version, shards)
}

/// The layout of a restore test's group: the source's cluster mode, the snapshot's shards.
pub async fn layout(deps: &Deps, source: &Cache, snap: &CacheSnapshot) -> Result<Layout, RestoreError> {
    if !source.cluster_mode {
        return Ok(Layout::default());
    }
    sharded(deps, &rdb_copy::describe(&deps.ec, snap, source).await?)
}

/// The layout of a console restore of `snap`: cluster mode when its source group (still in the region) has
/// it on, or, when the source is gone, when the snapshot holds more than one shard (only a sharded group
/// makes those). A one-shard snapshot of a sharded group that no longer exists is restored with cluster mode
/// off.
pub async fn console_layout(deps: &Deps, snap: &CacheSnapshot) -> Result<Layout, RestoreError> {
    let all = lifeboat::caches::elasticache::discover(&deps.ec).await?;
    if let Some(source) = all.iter().find(|c| c.id == snap.cache) {
        return layout(deps, source, snap).await;
    }
    let d = rdb_copy::describe(&deps.ec, snap, &stand_in(&snap.cache)).await?;
    if d.shards > 1 {
        sharded(deps, &d)
    } else {
        Ok(Layout::default())
    }
}

/// The source of a snapshot whose group no longer exists, as far as its snapshot tells.
fn stand_in(id: &str) -> Cache {
    Cache {
        id: id.to_owned(),
        kind: CacheKind::ReplicationGroup,
        arn: String::new(),
        engine: "redis".to_owned(),
        status: "deleted".to_owned(),
        tags: Default::default(),
        cluster_mode: true,
        members: Vec::new(),
        at_rest_encryption: false,
        transit_encryption: false,
        snapshot_retention_days: 0,
        replicated: false,
    }
}
