//! setSecret: makes the database accept the pending credentials. This file gathers the facts the decision table
//! (`lifeboat::postgres::rotation::set_secret`) asks for, one at a time, and carries out the table's decision. It decides
//! nothing itself: which credential may change a password, and when to refuse, is the table's.

use lifeboat::postgres::rotation::set_secret::{
    decide_set, original_of, Action, Attempt, Failed, Login, Probe, RoleRights, SetDecision, SetFacts, Via,
};
use lifeboat::postgres::rotation::{Strategy, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use tokio_postgres::Client;

use crate::credentials::{Credentials, Role};
use crate::error::RotateError;
use crate::event::RotationEvent;
use crate::settings::RotateSettings;
use crate::{postgres, secrets};

/// Runs setSecret. Returns the pending user and what was done (`pending_already_works` or `password_set`).
pub async fn set(
    sm: &aws_sdk_secretsmanager::Client,
    settings: &RotateSettings,
    ev: &RotationEvent,
    current: &Credentials,
    strategy: Strategy,
) -> Result<(String, &'static str), RotateError> {
    let pending = secrets::require(sm, &ev.secret_id, AWSPENDING, Some(&ev.token), Role::Pending).await?;
    let mut step = SetStep::new(sm, settings, ev, current, strategy, pending);
    loop {
        match decide_set(&step.facts()) {
            SetDecision::Probe(probe) => step.learn(probe).await?,
            SetDecision::AlreadyDone => return Ok((step.pending.username, "pending_already_works")),
            SetDecision::Refuse(refusal) => return Err(refusal.into()),
            SetDecision::LoginFailed(failed) => return Err(step.failure(failed)),
            SetDecision::Act(action) => {
                step.act(action).await?;
                break;
            }
        }
    }
    // Prove it before reporting success, with the other logins closed.
    let (settings, pending) = (step.settings, step.into_pending());
    postgres::connect(&pending, Role::Pending, &settings.tls, None, settings.connect_timeout).await?;
    Ok((pending.username, "password_set"))
}

/// One login attempt and what it gave: the session, kept to act through, or the error, kept to report.
enum Tried {
    Untried,
    LogsIn(Client),
    Fails(RotateError),
}

impl Tried {
    fn of(result: Result<Client, RotateError>) -> Self {
        match result {
            Ok(client) => Self::LogsIn(client),
            Err(e) => Self::Fails(e),
        }
    }

    fn attempt(&self) -> Attempt {
        match self {
            Self::Untried => Attempt::Untried,
            Self::LogsIn(_) => Attempt::LogsIn,
            Self::Fails(_) => Attempt::Fails,
        }
    }

    fn client(&mut self, role: Role) -> Result<&mut Client, RotateError> {
        match self {
            Self::LogsIn(client) => Ok(client),
            _ => Err(out_of_order(format!("acting as {} before it logged in", role.as_str()))),
        }
    }

    fn into_error(self, role: Role) -> RotateError {
        match self {
            Self::Fails(e) => e,
            _ => out_of_order(format!("reporting a failed {} login that did not fail", role.as_str())),
        }
    }
}

/// The decision table asked for something its own facts rule out; a bug, reported rather than looped on.
fn out_of_order(what: String) -> RotateError {
    RotateError::protocol(format!("setSecret went out of order: {what}"))
}

fn login(c: &Credentials) -> Login<'_> {
    Login {
        user: &c.username,
        host: &c.host,
        port: c.port,
    }
}

/// What one setSecret has read and tried so far.
struct SetStep<'a> {
    sm: &'a aws_sdk_secretsmanager::Client,
    settings: &'a RotateSettings,
    ev: &'a RotationEvent,
    strategy: Strategy,
    current: &'a Credentials,
    pending: Credentials,
    pending_login: Attempt,
    current_login: Tried,
    previous: Option<Option<Credentials>>,
    previous_login: Tried,
    master: Option<Credentials>,
    master_login: Tried,
    pending_role_exists: Option<bool>,
    original_rights: Option<RoleRights>,
}

impl<'a> SetStep<'a> {
    fn new(
        sm: &'a aws_sdk_secretsmanager::Client,
        settings: &'a RotateSettings,
        ev: &'a RotationEvent,
        current: &'a Credentials,
        strategy: Strategy,
        pending: Credentials,
    ) -> Self {
        Self {
            sm,
            settings,
            ev,
            strategy,
            current,
            pending,
            pending_login: Attempt::Untried,
            current_login: Tried::Untried,
            previous: None,
            previous_login: Tried::Untried,
            master: None,
            master_login: Tried::Untried,
            pending_role_exists: None,
            original_rights: None,
        }
    }

    fn facts(&self) -> SetFacts<'_> {
        SetFacts {
            strategy: self.strategy,
            current: login(self.current),
            pending: login(&self.pending),
            pending_login: self.pending_login,
            current_login: self.current_login.attempt(),
            previous: self.previous.as_ref().map(|p| p.as_ref().map(login)),
            previous_login: self.previous_login.attempt(),
            master: self.master.as_ref().map(login),
            master_login: self.master_login.attempt(),
            pending_role_exists: self.pending_role_exists,
            original_rights: self.original_rights,
        }
    }

    async fn connect(&self, creds: &Credentials, role: Role, dbname: Option<&str>) -> Result<Client, RotateError> {
        let s = self.settings;
        postgres::connect(creds, role, &s.tls, dbname, s.connect_timeout).await
    }

    /// Learns one fact. Failed logins are facts, kept for the table; failed reads and lookups end the step.
    async fn learn(&mut self, probe: Probe) -> Result<(), RotateError> {
        match probe {
            Probe::PendingLogin => {
                // Only whether it logs in matters: failing is the expected state before the password is set.
                let works = self.connect(&self.pending, Role::Pending, None).await.is_ok();
                self.pending_login = if works { Attempt::LogsIn } else { Attempt::Fails };
            }
            Probe::CurrentLogin => {
                self.current_login = Tried::of(self.connect(self.current, Role::Current, None).await)
            }
            Probe::ReadPrevious => {
                let id = &self.ev.secret_id;
                self.previous = Some(secrets::get(self.sm, id, AWSPREVIOUS, None, Role::Previous).await?);
            }
            Probe::PreviousLogin => {
                let Some(Some(previous)) = &self.previous else {
                    return Err(out_of_order("logging in with AWSPREVIOUS before reading it".into()));
                };
                self.previous_login = Tried::of(self.connect(previous, Role::Previous, None).await);
            }
            Probe::ReadMaster => {
                let arn = self.current.masterarn.as_deref().unwrap_or_default();
                self.master = Some(secrets::require(self.sm, arn, AWSCURRENT, None, Role::Master).await?);
            }
            Probe::MasterLogin => {
                let master = self.master()?;
                // The master logs in to the user's database, where the user's grants live.
                let dbname = Some(self.current.dbname.as_str());
                self.master_login = Tried::of(self.connect(master, Role::Master, dbname).await);
            }
            Probe::PendingRole => self.pending_role_exists = Some(self.look_up_pending_role().await?),
            Probe::OriginalRights => self.original_rights = Some(self.look_up_original_rights().await?),
        }
        Ok(())
    }

    fn master(&self) -> Result<&Credentials, RotateError> {
        self.master
            .as_ref()
            .ok_or_else(|| out_of_order("using the master secret before reading it".into()))
    }

    async fn look_up_pending_role(&mut self) -> Result<bool, RotateError> {
        let master = self.master.as_ref().map(|m| m.username.as_str()).unwrap_or_default();
        let client = self.master_login.client(Role::Master)?;
        postgres::role_exists(client, Role::Master, master, &self.pending.username).await
    }

    /// What the pair's original user may do, which the table checks before the master clones it or sets its
    /// password.
    async fn look_up_original_rights(&mut self) -> Result<RoleRights, RotateError> {
        let master = self.master.as_ref().map(|m| m.username.as_str()).unwrap_or_default();
        let original = original_of(&self.current.username, &self.pending.username);
        let client = self.master_login.client(Role::Master)?;
        postgres::role_rights(client, master, original).await
    }

    /// Changes the database as the table decided.
    async fn act(&mut self, action: Action) -> Result<(), RotateError> {
        let (user, password) = (self.pending.username.as_str(), self.pending.password.as_str());
        let source = self.current.username.as_str();
        let master = self.master.as_ref().map(|m| m.username.as_str()).unwrap_or_default();
        match action {
            Action::SetOwnPassword { via } => {
                let (tried, role) = match via {
                    Via::Current => (&mut self.current_login, Role::Current),
                    Via::Previous => (&mut self.previous_login, Role::Previous),
                };
                // The statement runs as the user itself, whichever of its passwords logged in.
                postgres::set_password(tried.client(role)?, Role::Current, source, user, password).await
            }
            Action::CreateClone => {
                let client = self.master_login.client(Role::Master)?;
                postgres::create_clone(client, master, source, user, password).await
            }
            Action::UpdateClone => {
                let client = self.master_login.client(Role::Master)?;
                postgres::update_clone(client, master, source, user, password).await
            }
            Action::SetPasswordAsMaster => {
                let client = self.master_login.client(Role::Master)?;
                postgres::set_password(client, Role::Master, master, user, password).await
            }
        }
    }

    /// The error of a step whose logins all failed: the current one's, with the previous one's when it was tried.
    fn failure(self, failed: Failed) -> RotateError {
        match failed {
            Failed::Current => self.current_login.into_error(Role::Current),
            Failed::CurrentAndPrevious => {
                let current_err = self.current_login.into_error(Role::Current);
                let prev_err = self.previous_login.into_error(Role::Previous);
                RotateError {
                    message: format!("{current_err}; and {prev_err}"),
                    ..current_err
                }
            }
            Failed::Master => self.master_login.into_error(Role::Master),
        }
    }

    /// The pending credentials; every other session this step opened closes here.
    fn into_pending(self) -> Credentials {
        self.pending
    }
}
