//! The content watch's hold, right after a backup's comparison is written beside its manifest: the anomaly it
//! calls for is opened (or extended) through `lifeboat::watch::hold::open_for`, so the last good restore points
//! are held before the next retention run. Monitor opens any the export missed within the hour.
//!
//! Must never fail the export: the backup is complete and verified when its manifest exists, and a hold that
//! could not be opened here is logged and opened by monitor's next run.

use lifeboat::watch::hold::{self, Clients, Opened};
use lifeboat::watch::record::Watch;

use crate::deps::Deps;

/// Opens the anomaly `watch` calls for; logs what it did or why it could not, never an error.
pub async fn open(deps: &Deps, watch: &Watch) {
    let clients = Clients {
        s3: &deps.s3,
        rds: &deps.rds,
        ec: &deps.ec,
        bucket: &deps.settings.bucket,
        serverless: deps.settings.serverless_caches,
    };
    match hold::open_for(clients, watch).await {
        Ok(Opened::Nothing) => {}
        Ok(done) => tracing::info!(manifest = %watch.manifest_key, outcome = ?done, "content watch hold"),
        Err(e) => {
            tracing::error!(manifest = %watch.manifest_key, error = %e, "content anomaly not opened; monitor opens it within the hour");
        }
    }
}
