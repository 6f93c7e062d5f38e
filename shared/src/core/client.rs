//! An AWS SDK client built when a call first needs it, not when the function starts.
//!
//! Building an SDK client parses its service's endpoint partition table (a JSON document of every AWS partition
//! and the regular expressions of its regions) and sets up its runtime plugins. With every client built at start,
//! a function paid that for each service it might call, on every cold start, before its first event: `perf` on
//! the restore function's start put about a third of its time to the first event in those tables, five services'
//! worth, while a restore-test step calls one or two of them. Built on first use, each client costs the same once,
//! and only in an invocation that calls its service.
//!
//! The client is reached through `Deref`, so a call reads as it would on the client itself: `deps.s3.get_object()`.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;

/// How a client is built: a client crate's `Client::new` and the configuration it is given.
type Build<C> = Arc<dyn Fn() -> C + Send + Sync>;

/// A client of type `C` (an SDK crate's `Client`), built once, on first use, from the configuration it was given.
/// Clones share the one client.
pub struct OnFirstUse<C> {
    client: Arc<OnceLock<C>>,
    build: Build<C>,
}

impl<C: Send + Sync + 'static> OnFirstUse<C> {
    /// `build` is the client crate's constructor, such as `aws_sdk_s3::Client::new`.
    pub fn new(config: &SdkConfig, build: fn(&SdkConfig) -> C) -> Self {
        let config = config.clone();
        Self {
            client: Arc::default(),
            build: Arc::new(move || build(&config)),
        }
    }
}

/// A client built already (tests hand in one pointed at a stub or at the local cloud).
impl<C: Clone + Send + Sync + 'static> From<C> for OnFirstUse<C> {
    fn from(client: C) -> Self {
        let built = Arc::new(OnceLock::new());
        // A fresh cell takes its first value.
        let _ = built.set(client.clone());
        Self {
            client: built,
            build: Arc::new(move || client.clone()),
        }
    }
}

impl<C> Deref for OnFirstUse<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.client.get_or_init(|| (self.build)())
    }
}

impl<C> Clone for OnFirstUse<C> {
    fn clone(&self) -> Self {
        Self {
            client: Arc::clone(&self.client),
            build: Arc::clone(&self.build),
        }
    }
}

impl<C> fmt::Debug for OnFirstUse<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnFirstUse")
            .field("client", &std::any::type_name::<C>())
            .field("built", &self.client.get().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    static BUILT: AtomicUsize = AtomicUsize::new(0);

    fn counted(config: &SdkConfig) -> aws_sdk_s3::Client {
        BUILT.fetch_add(1, SeqCst);
        aws_sdk_s3::Client::new(config)
    }

    fn config() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build()
    }

    #[test]
    fn a_client_is_built_on_first_use_only_once_and_shared_by_clones() {
        let lazy = OnFirstUse::new(&config(), counted);
        let twin = lazy.clone();
        assert_eq!(BUILT.load(SeqCst), 0, "built before any use");
        assert!(format!("{lazy:?}").contains("built: false"));
        assert_eq!(lazy.config().region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(twin.config().region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(BUILT.load(SeqCst), 1, "built once for both clones");
        assert!(format!("{twin:?}").contains("built: true"));
    }

    #[test]
    fn a_client_handed_in_is_the_one_used() {
        let given = aws_sdk_s3::Client::new(&config());
        let lazy = OnFirstUse::from(given);
        assert!(format!("{lazy:?}").contains("built: true"));
        assert_eq!(lazy.config().region().map(|r| r.as_ref()), Some("eu-west-1"));
    }
}
