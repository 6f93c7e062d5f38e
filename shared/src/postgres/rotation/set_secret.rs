//! The setSecret decision table: given what is known so far about the secret's versions (AWSPENDING,
//! AWSCURRENT, AWSPREVIOUS, the master secret) and which of their credentials log in, what setSecret does next.
//!
//! setSecret learns facts one at a time and in a fixed order (each login is a network round trip, and AWSPREVIOUS
//! and the master secret are read only when needed), so the table answers either "learn this next"
//! ([`SetDecision::Probe`]) or an end: nothing to do, change the database, refuse, or report failed logins. The
//! handler loops: ask, learn the fact, ask again.
//!
//! It owns the order of the checks, which credential may change a password and the refusals' messages. It must
//! never do I/O, never see a password, and never decide to change a password unless the credential that would
//! change it has been seen to log in and the pending credentials have been seen not to.
//!
//! Alternating users (the confused-deputy guard, issue 12): the master acts on the secret's say-so, so before it
//! creates or changes `<user>_clone` the table requires, as AWS's multi-user rotation template does, that the
//! AWSCURRENT credentials themselves log in (a secret naming `postgres` with a made-up password and a real
//! `masterarn` would otherwise get a clone of the master, whose password then lands in that secret). And it
//! refuses a pair whose original is the master user itself, a superuser, a member of `rds_superuser` or a role with
//! CREATEROLE ([`RoleRights::privilege`]): a clone shares the original's memberships and attributes, so cloning an
//! administrator hands a second administrator's password to whoever can read the secret. Such roles rotate with
//! the single-user strategy, as AWS recommends for the master user.

use super::{clone_of, same_pair, Strategy};

/// The parts of a secret the table looks at: where and as whom it logs in (never the password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Login<'a> {
    pub user: &'a str,
    pub host: &'a str,
    pub port: u16,
}

/// What is known of one login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attempt {
    #[default]
    Untried,
    LogsIn,
    Fails,
}

/// Everything setSecret has learned so far. `None` means not learned yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetFacts<'a> {
    pub strategy: Strategy,
    /// AWSCURRENT.
    pub current: Login<'a>,
    /// AWSPENDING, the value createSecret stored for this rotation.
    pub pending: Login<'a>,
    pub pending_login: Attempt,
    /// The current credentials. Single-user: they set their own password. Alternating users: proven before the
    /// master acts on the secret's say-so.
    pub current_login: Attempt,
    /// Single-user, when the current credentials fail: AWSPREVIOUS (`Some(None)`: the secret has no such value).
    pub previous: Option<Option<Login<'a>>>,
    pub previous_login: Attempt,
    /// Alternating users: the master secret named by `masterarn`.
    pub master: Option<Login<'a>>,
    /// The master's login, to the user's database.
    pub master_login: Attempt,
    /// Alternating users: whether the pending user is a role in the database (looked up as the master).
    pub pending_role_exists: Option<bool>,
    /// Alternating users: what the original user of the pair ([`original_of`]) may do (looked up as the master).
    pub original_rights: Option<RoleRights>,
}

impl<'a> SetFacts<'a> {
    /// What setSecret knows before it tries anything: the two values it has read.
    pub fn new(strategy: Strategy, current: Login<'a>, pending: Login<'a>) -> Self {
        Self {
            strategy,
            current,
            pending,
            pending_login: Attempt::Untried,
            current_login: Attempt::Untried,
            previous: None,
            previous_login: Attempt::Untried,
            master: None,
            master_login: Attempt::Untried,
            pending_role_exists: None,
            original_rights: None,
        }
    }
}

/// The fact to learn next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Log in with AWSPENDING (an earlier attempt may have set the password already).
    PendingLogin,
    /// Log in with AWSCURRENT.
    CurrentLogin,
    /// Read AWSPREVIOUS.
    ReadPrevious,
    /// Log in with AWSPREVIOUS.
    PreviousLogin,
    /// Read the master secret.
    ReadMaster,
    /// Log in as the master, to the user's database.
    MasterLogin,
    /// Look up the pending user's role, as the master.
    PendingRole,
    /// Look up the rights of the pair's original user ([`original_of`]), as the master.
    OriginalRights,
}

/// The attributes of a role that make it an administrator, as the master reads them from `pg_roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoleRights {
    /// `rolsuper`.
    pub superuser: bool,
    /// A member of `rds_superuser`, directly or through other roles (RDS's administrators; the master is one).
    pub rds_superuser: bool,
    /// `rolcreaterole`: may create roles and, before PostgreSQL 16, grant itself any non-superuser role.
    pub create_role: bool,
}

impl RoleRights {
    /// Why alternating users must not clone a role with these rights; `None` for an ordinary user.
    pub fn privilege(self) -> Option<Privilege> {
        if self.superuser {
            Some(Privilege::Superuser)
        } else if self.rds_superuser {
            Some(Privilege::RdsSuperuser)
        } else if self.create_role {
            Some(Privilege::CreateRole)
        } else {
            None
        }
    }
}

/// Why a role is not cloned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Privilege {
    #[error("it is the master user (the username of the secret named by masterarn)")]
    MasterUser,
    #[error("it is a superuser")]
    Superuser,
    #[error("it is a member of rds_superuser")]
    RdsSuperuser,
    #[error("it has CREATEROLE")]
    CreateRole,
}

/// The original user of an alternating pair: the one that is not the other's clone. Its rights are the pair's:
/// the clone is made with its attributes, its memberships, and membership in it.
pub fn original_of<'a>(current: &'a str, pending: &'a str) -> &'a str {
    if clone_of(current) == pending {
        current
    } else {
        pending
    }
}

/// Which logged-in credential sets a single user's own password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Current,
    /// An earlier rotation set the database's password but failed before finishSecret moved AWSCURRENT.
    Previous,
}

/// A change to the database, to make the pending credentials log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Single-user: the user sets its own password, logged in as `via`.
    SetOwnPassword { via: Via },
    /// Alternating users: the master creates the clone of the current user, with its roles and privileges.
    CreateClone,
    /// Alternating users: the master sets the clone's password and brings its roles up to date.
    UpdateClone,
    /// Alternating users: the master sets the password of the other, original user.
    SetPasswordAsMaster,
}

/// Logins that failed, leaving no credential that may change the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// AWSCURRENT fails and there is no AWSPREVIOUS of the same user and host to fall back on.
    Current,
    /// AWSCURRENT and AWSPREVIOUS both fail.
    CurrentAndPrevious,
    /// The master fails.
    Master,
}

/// A state setSecret must not act on. The messages name users and hosts, never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the pending credentials are for {pending_host}:{pending_port}, the current ones for \
         {current_host}:{current_port}; refusing to set a password on another server"
    )]
    AnotherServer {
        pending_host: String,
        pending_port: u16,
        current_host: String,
        current_port: u16,
    },
    #[error("single-user rotation: the pending user {pending} is not the current user {current}")]
    NotTheCurrentUser { pending: String, current: String },
    #[error("alternating-users rotation: the pending user {pending} and the current user {current} are not a pair")]
    NotAPair { pending: String, current: String },
    #[error("the master secret is for host {master}, the user's for {current}; refusing to use it")]
    MasterOnAnotherHost { master: String, current: String },
    #[error("user {pending} does not exist; alternating users only creates the clone of the current user")]
    NoSuchUser { pending: String },
    #[error("alternating-users rotation: refusing to clone {user}: {why}; rotate it with the single-user strategy")]
    Privileged { user: String, why: Privilege },
}

/// What setSecret does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetDecision {
    /// Learn this, then decide again.
    Probe(Probe),
    /// Nothing to do: the pending credentials already log in (a retry, or a redelivered event).
    AlreadyDone,
    /// Change the database, then prove the pending credentials log in.
    Act(Action),
    Refuse(Refusal),
    LoginFailed(Failed),
}

/// The table. Checks run in this order, each only once the facts before it are known: the pending value is for
/// the same server; the pending credentials already log in; then the strategy's own checks.
pub fn decide_set(f: &SetFacts<'_>) -> SetDecision {
    if (f.pending.host, f.pending.port) != (f.current.host, f.current.port) {
        return SetDecision::Refuse(Refusal::AnotherServer {
            pending_host: f.pending.host.to_owned(),
            pending_port: f.pending.port,
            current_host: f.current.host.to_owned(),
            current_port: f.current.port,
        });
    }
    match f.pending_login {
        Attempt::Untried => return SetDecision::Probe(Probe::PendingLogin),
        Attempt::LogsIn => return SetDecision::AlreadyDone,
        Attempt::Fails => {}
    }
    match f.strategy {
        Strategy::SingleUser => single_user(f),
        Strategy::AlternatingUsers => alternating_users(f),
    }
}

/// The user sets its own password with the current credentials, or with the previous ones when the current fail.
fn single_user(f: &SetFacts<'_>) -> SetDecision {
    if f.pending.user != f.current.user {
        return SetDecision::Refuse(Refusal::NotTheCurrentUser {
            pending: f.pending.user.to_owned(),
            current: f.current.user.to_owned(),
        });
    }
    match f.current_login {
        Attempt::Untried => return SetDecision::Probe(Probe::CurrentLogin),
        Attempt::LogsIn => return SetDecision::Act(Action::SetOwnPassword { via: Via::Current }),
        Attempt::Fails => {}
    }
    let Some(previous) = f.previous else {
        return SetDecision::Probe(Probe::ReadPrevious);
    };
    // Only the same user on the same host can stand in for the current credentials.
    if !previous.is_some_and(|p| p.user == f.current.user && p.host == f.current.host) {
        return SetDecision::LoginFailed(Failed::Current);
    }
    match f.previous_login {
        Attempt::Untried => SetDecision::Probe(Probe::PreviousLogin),
        Attempt::LogsIn => SetDecision::Act(Action::SetOwnPassword { via: Via::Previous }),
        Attempt::Fails => SetDecision::LoginFailed(Failed::CurrentAndPrevious),
    }
}

/// The master sets the other user's password, creating the clone the first time.
fn alternating_users(f: &SetFacts<'_>) -> SetDecision {
    if !same_pair(f.pending.user, f.current.user) {
        return SetDecision::Refuse(Refusal::NotAPair {
            pending: f.pending.user.to_owned(),
            current: f.current.user.to_owned(),
        });
    }
    // Prove the current credentials before the master acts on what the secret says (AWS's multi-user template).
    match f.current_login {
        Attempt::Untried => return SetDecision::Probe(Probe::CurrentLogin),
        Attempt::Fails => return SetDecision::LoginFailed(Failed::Current),
        Attempt::LogsIn => {}
    }
    if let Some(end) = master_may_act(f) {
        return end;
    }
    let Some(exists) = f.pending_role_exists else {
        return SetDecision::Probe(Probe::PendingRole);
    };
    let action = match (exists, clone_of(f.current.user) == f.pending.user) {
        (false, false) => {
            return SetDecision::Refuse(Refusal::NoSuchUser {
                pending: f.pending.user.to_owned(),
            })
        }
        (false, true) => Action::CreateClone,
        (true, true) => Action::UpdateClone,
        (true, false) => Action::SetPasswordAsMaster,
    };
    let Some(rights) = f.original_rights else {
        return SetDecision::Probe(Probe::OriginalRights);
    };
    match rights.privilege() {
        Some(why) => SetDecision::Refuse(Refusal::Privileged {
            user: original_of(f.current.user, f.pending.user).to_owned(),
            why,
        }),
        None => SetDecision::Act(action),
    }
}

/// The master secret's checks: read, on the user's host, not one of the pair, logged in. `None` once all hold.
fn master_may_act(f: &SetFacts<'_>) -> Option<SetDecision> {
    let Some(master) = f.master else {
        return Some(SetDecision::Probe(Probe::ReadMaster));
    };
    if master.host != f.current.host {
        return Some(SetDecision::Refuse(Refusal::MasterOnAnotherHost {
            master: master.host.to_owned(),
            current: f.current.host.to_owned(),
        }));
    }
    if same_pair(master.user, f.current.user) {
        return Some(SetDecision::Refuse(Refusal::Privileged {
            user: master.user.to_owned(),
            why: Privilege::MasterUser,
        }));
    }
    match f.master_login {
        Attempt::Untried => Some(SetDecision::Probe(Probe::MasterLogin)),
        Attempt::Fails => Some(SetDecision::LoginFailed(Failed::Master)),
        Attempt::LogsIn => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::rotation::Strategy;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;

    const DB: &str = "db.internal";

    fn login(user: &str) -> Login<'_> {
        Login {
            user,
            host: DB,
            port: 5432,
        }
    }

    fn single(pending_login: Attempt) -> SetFacts<'static> {
        SetFacts {
            pending_login,
            ..SetFacts::new(Strategy::SingleUser, login("app"), login("app"))
        }
    }

    fn alternating(pending_login: Attempt, pending: &'static str) -> SetFacts<'static> {
        SetFacts {
            pending_login,
            current_login: Attempt::LogsIn,
            ..SetFacts::new(Strategy::AlternatingUsers, login("app"), login(pending))
        }
    }

    #[test]
    fn a_pending_value_for_another_server_is_refused_before_anything_is_tried() {
        for port in [5432, 5433] {
            let other = Login {
                host: if port == 5432 { "elsewhere" } else { DB },
                port,
                ..login("app")
            };
            let f = SetFacts::new(Strategy::SingleUser, login("app"), other);
            let d = decide_set(&f);
            assert!(matches!(d, SetDecision::Refuse(Refusal::AnotherServer { .. })), "{d:?}");
        }
        let f = SetFacts::new(
            Strategy::SingleUser,
            login("app"),
            Login {
                port: 6543,
                ..login("app")
            },
        );
        let SetDecision::Refuse(r) = decide_set(&f) else {
            unreachable!()
        };
        assert_eq!(
            r.to_string(),
            "the pending credentials are for db.internal:6543, the current ones for db.internal:5432; refusing to \
             set a password on another server"
        );
    }

    #[test]
    fn the_pending_login_is_tried_first_and_ends_the_step_when_it_works() {
        for s in [Strategy::SingleUser, Strategy::AlternatingUsers] {
            let f = SetFacts::new(s, login("app"), login("app_clone"));
            let f = SetFacts {
                current: login("app_clone"),
                ..f
            };
            assert_eq!(decide_set(&f), SetDecision::Probe(Probe::PendingLogin));
            let done = SetFacts {
                pending_login: Attempt::LogsIn,
                ..f
            };
            assert_eq!(decide_set(&done), SetDecision::AlreadyDone);
        }
        // Even a pending user the strategy would refuse: it already logs in, so nothing is changed.
        let f = SetFacts::new(Strategy::SingleUser, login("app"), login("other"));
        assert_eq!(
            decide_set(&SetFacts {
                pending_login: Attempt::LogsIn,
                ..f
            }),
            SetDecision::AlreadyDone
        );
    }

    #[test]
    fn single_user_refuses_another_user() {
        let f = SetFacts {
            pending_login: Attempt::Fails,
            ..SetFacts::new(Strategy::SingleUser, login("app"), login("app_clone"))
        };
        let SetDecision::Refuse(r) = decide_set(&f) else {
            unreachable!()
        };
        assert_eq!(
            r.to_string(),
            "single-user rotation: the pending user app_clone is not the current user app"
        );
    }

    #[test]
    fn single_user_sets_its_password_with_the_current_credentials() {
        let f = single(Attempt::Fails);
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::CurrentLogin));
        let f = SetFacts {
            current_login: Attempt::LogsIn,
            ..f
        };
        assert_eq!(
            decide_set(&f),
            SetDecision::Act(Action::SetOwnPassword { via: Via::Current })
        );
    }

    #[test]
    fn single_user_falls_back_to_the_previous_credentials_of_the_same_user_and_host() {
        let f = SetFacts {
            current_login: Attempt::Fails,
            ..single(Attempt::Fails)
        };
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::ReadPrevious));
        assert_eq!(
            decide_set(&SetFacts {
                previous: Some(None),
                ..f
            }),
            SetDecision::LoginFailed(Failed::Current)
        );
        let other_user = SetFacts {
            previous: Some(Some(login("someone"))),
            ..f
        };
        assert_eq!(decide_set(&other_user), SetDecision::LoginFailed(Failed::Current));
        let other_host = Login {
            host: "elsewhere",
            ..login("app")
        };
        let other_host = SetFacts {
            previous: Some(Some(other_host)),
            ..f
        };
        assert_eq!(decide_set(&other_host), SetDecision::LoginFailed(Failed::Current));
        // The port is not compared: the same host and user is the same database's user.
        let other_port = Login {
            port: 6543,
            ..login("app")
        };
        let f = SetFacts {
            previous: Some(Some(other_port)),
            ..f
        };
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::PreviousLogin));
        let works = SetFacts {
            previous_login: Attempt::LogsIn,
            ..f
        };
        assert_eq!(
            decide_set(&works),
            SetDecision::Act(Action::SetOwnPassword { via: Via::Previous })
        );
        let fails = SetFacts {
            previous_login: Attempt::Fails,
            ..f
        };
        assert_eq!(decide_set(&fails), SetDecision::LoginFailed(Failed::CurrentAndPrevious));
    }

    #[test]
    fn alternating_users_refuse_a_user_outside_the_pair() {
        let f = alternating(Attempt::Fails, "admin");
        let SetDecision::Refuse(r) = decide_set(&f) else {
            unreachable!()
        };
        assert_eq!(
            r.to_string(),
            "alternating-users rotation: the pending user admin and the current user app are not a pair"
        );
    }

    #[test]
    fn alternating_users_need_a_master_on_the_same_host_that_logs_in() {
        let f = alternating(Attempt::Fails, "app_clone");
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::ReadMaster));
        let elsewhere = Login {
            host: "elsewhere",
            ..login("postgres")
        };
        let SetDecision::Refuse(r) = decide_set(&SetFacts {
            master: Some(elsewhere),
            ..f
        }) else {
            unreachable!()
        };
        assert_eq!(
            r.to_string(),
            "the master secret is for host elsewhere, the user's for db.internal; refusing to use it"
        );
        let f = SetFacts {
            master: Some(login("postgres")),
            ..f
        };
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::MasterLogin));
        let fails = SetFacts {
            master_login: Attempt::Fails,
            ..f
        };
        assert_eq!(decide_set(&fails), SetDecision::LoginFailed(Failed::Master));
        let f = SetFacts {
            master_login: Attempt::LogsIn,
            ..f
        };
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::PendingRole));
    }

    #[test]
    fn alternating_users_create_the_clone_once_then_update_it() {
        let ready = |pending: &'static str, exists: bool| SetFacts {
            master: Some(login("postgres")),
            master_login: Attempt::LogsIn,
            pending_role_exists: Some(exists),
            original_rights: Some(RoleRights::default()),
            ..alternating(Attempt::Fails, pending)
        };
        assert_eq!(
            decide_set(&ready("app_clone", false)),
            SetDecision::Act(Action::CreateClone)
        );
        assert_eq!(
            decide_set(&ready("app_clone", true)),
            SetDecision::Act(Action::UpdateClone)
        );
        let back = SetFacts {
            current: login("app_clone"),
            ..ready("app", true)
        };
        assert_eq!(decide_set(&back), SetDecision::Act(Action::SetPasswordAsMaster));
        let gone = SetFacts {
            current: login("app_clone"),
            ..ready("app", false)
        };
        let SetDecision::Refuse(r) = decide_set(&gone) else {
            unreachable!()
        };
        assert_eq!(
            r.to_string(),
            "user app does not exist; alternating users only creates the clone of the current user"
        );
    }

    #[test]
    fn alternating_users_prove_the_current_credentials_before_reading_the_master() {
        let f = SetFacts {
            pending_login: Attempt::Fails,
            ..SetFacts::new(Strategy::AlternatingUsers, login("postgres"), login("postgres_clone"))
        };
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::CurrentLogin));
        let forged = SetFacts {
            current_login: Attempt::Fails,
            ..f
        };
        assert_eq!(decide_set(&forged), SetDecision::LoginFailed(Failed::Current));
    }

    #[test]
    fn alternating_users_never_clone_the_master_user() {
        for (current, pending) in [("postgres", "postgres_clone"), ("postgres_clone", "postgres")] {
            let f = SetFacts {
                current: login(current),
                master: Some(login("postgres")),
                ..alternating(Attempt::Fails, pending)
            };
            let SetDecision::Refuse(r) = decide_set(&f) else {
                unreachable!()
            };
            assert_eq!(
                r.to_string(),
                "alternating-users rotation: refusing to clone postgres: it is the master user (the username of \
                 the secret named by masterarn); rotate it with the single-user strategy"
            );
        }
    }

    #[test]
    fn alternating_users_never_clone_an_administrator() {
        let ready = |current: &'static str, pending: &'static str, exists: bool| SetFacts {
            current: login(current),
            master: Some(login("postgres")),
            master_login: Attempt::LogsIn,
            pending_role_exists: Some(exists),
            ..alternating(Attempt::Fails, pending)
        };
        let f = ready("admin", "admin_clone", false);
        assert_eq!(decide_set(&f), SetDecision::Probe(Probe::OriginalRights));
        let cases = [
            (
                RoleRights {
                    superuser: true,
                    ..RoleRights::default()
                },
                "it is a superuser",
            ),
            (
                RoleRights {
                    rds_superuser: true,
                    create_role: true,
                    ..RoleRights::default()
                },
                "it is a member of rds_superuser",
            ),
            (
                RoleRights {
                    create_role: true,
                    ..RoleRights::default()
                },
                "it has CREATEROLE",
            ),
        ];
        // The original of the pair is named, whichever of the two is current.
        for f in [
            ready("admin", "admin_clone", false),
            ready("admin_clone", "admin", true),
        ] {
            for (rights, why) in cases {
                let SetDecision::Refuse(r) = decide_set(&SetFacts {
                    original_rights: Some(rights),
                    ..f
                }) else {
                    unreachable!()
                };
                let expected = format!("refusing to clone admin: {why}; rotate it with the single-user strategy");
                assert!(r.to_string().ends_with(&expected), "{r}");
            }
        }
        assert_eq!(RoleRights::default().privilege(), None);
        assert_eq!(original_of("app", "app_clone"), "app");
        assert_eq!(original_of("app_clone", "app"), "app");
    }

    /// The outcomes the world would give each probe, drawn at random.
    #[derive(Debug, Clone)]
    struct World {
        pending: bool,
        current: bool,
        previous: Option<(bool, bool, bool)>,
        previous_login: bool,
        master_same_host: bool,
        master: bool,
        role_exists: bool,
        rights: RoleRights,
    }

    fn attempt(works: bool) -> Attempt {
        if works {
            Attempt::LogsIn
        } else {
            Attempt::Fails
        }
    }

    fn learn(f: &mut SetFacts<'_>, probe: Probe, w: &World) {
        match probe {
            Probe::PendingLogin => f.pending_login = attempt(w.pending),
            Probe::CurrentLogin => f.current_login = attempt(w.current),
            Probe::ReadPrevious => {
                f.previous = Some(w.previous.map(|(same_user, same_host, same_port)| Login {
                    user: if same_user { f.current.user } else { "someone" },
                    host: if same_host { f.current.host } else { "elsewhere" },
                    port: if same_port { f.current.port } else { 6543 },
                }));
            }
            Probe::PreviousLogin => f.previous_login = attempt(w.previous_login),
            Probe::ReadMaster => {
                let host = if w.master_same_host {
                    f.current.host
                } else {
                    "elsewhere"
                };
                f.master = Some(Login {
                    host,
                    ..login("postgres")
                });
            }
            Probe::MasterLogin => f.master_login = attempt(w.master),
            Probe::PendingRole => f.pending_role_exists = Some(w.role_exists),
            Probe::OriginalRights => f.original_rights = Some(w.rights),
        }
    }

    fn world() -> impl proptest::strategy::Strategy<Value = World> {
        (
            any::<[bool; 6]>(),
            any::<Option<(bool, bool, bool)>>(),
            any::<(bool, bool, bool)>(),
        )
            .prop_map(|(b, previous, (superuser, rds_superuser, create_role))| World {
                pending: b[0],
                current: b[1],
                previous,
                previous_login: b[2],
                master_same_host: b[3],
                master: b[4],
                role_exists: b[5],
                rights: RoleRights {
                    superuser,
                    rds_superuser,
                    create_role,
                },
            })
    }

    fn start() -> impl proptest::strategy::Strategy<Value = (bool, &'static str, &'static str, &'static str, u16)> {
        // `postgres` is the master's user (see `learn`).
        let users = prop::sample::select(vec!["app", "app_clone", "other", "postgres", "postgres_clone"]);
        let hosts = prop::sample::select(vec![DB, "elsewhere"]);
        (
            any::<bool>(),
            users.clone(),
            users,
            hosts,
            prop::sample::select(vec![5432u16, 6543]),
        )
    }

    /// Runs the table to its end against `w`, as the handler does; the probes asked, in order, and the end.
    fn run(f: &mut SetFacts<'_>, w: &World) -> (Vec<Probe>, SetDecision) {
        let mut asked = Vec::new();
        loop {
            match decide_set(f) {
                SetDecision::Probe(p) if asked.len() < 8 => {
                    asked.push(p);
                    learn(f, p, w);
                }
                end => return (asked, end),
            }
        }
    }

    proptest! {
        /// The step ends after a few questions, never asks one twice, and acts only when the credential it acts
        /// through has been seen to log in and the pending credentials have been seen not to.
        #[test]
        fn acts_only_through_a_login_that_works(
            (alternate, current_user, pending_user, pending_host, pending_port) in start(),
            w in world(),
        ) {
            let strategy = if alternate { Strategy::AlternatingUsers } else { Strategy::SingleUser };
            let pending = Login { user: pending_user, host: pending_host, port: pending_port };
            let mut f = SetFacts::new(strategy, login(current_user), pending);
            let (asked, end) = run(&mut f, &w);
            prop_assert!(!matches!(end, SetDecision::Probe(_)), "no end after {asked:?}");
            let mut unique = asked.clone();
            unique.sort_by_key(|p| *p as u8);
            unique.dedup();
            prop_assert_eq!(unique.len(), asked.len(), "a probe asked twice: {:?}", asked);
            if let SetDecision::Act(action) = end {
                prop_assert_eq!(f.pending_login, Attempt::Fails);
                prop_assert_eq!((f.pending.host, f.pending.port), (f.current.host, f.current.port));
                let through = match action {
                    Action::SetOwnPassword { via: Via::Current } => f.current_login,
                    Action::SetOwnPassword { via: Via::Previous } => f.previous_login,
                    _ => f.master_login,
                };
                prop_assert_eq!(through, Attempt::LogsIn);
                match strategy {
                    Strategy::SingleUser => prop_assert_eq!(f.pending.user, f.current.user),
                    Strategy::AlternatingUsers => {
                        prop_assert!(same_pair(f.pending.user, f.current.user));
                        prop_assert_eq!(f.master.map(|m| m.host), Some(f.current.host));
                        // The confused-deputy guard: the secret's own credentials logged in, and the pair is
                        // neither the master's nor an administrator's.
                        prop_assert_eq!(f.current_login, Attempt::LogsIn);
                        prop_assert!(!f.master.is_some_and(|m| same_pair(m.user, f.current.user)));
                        prop_assert_eq!(f.original_rights.and_then(RoleRights::privilege), None);
                        prop_assert!(f.original_rights.is_some());
                    }
                }
            }
            // AWSPREVIOUS is a fallback: read only when the current credentials fail.
            if asked.contains(&Probe::ReadPrevious) {
                prop_assert_eq!(f.current_login, Attempt::Fails);
            }
        }

        /// Idempotent: once acting has made the pending credentials log in, deciding again on the same facts
        /// says there is nothing to do (a retried or redelivered setSecret changes nothing).
        #[test]
        fn after_acting_there_is_nothing_to_do(
            (alternate, current_user, pending_user, pending_host, pending_port) in start(),
            w in world(),
        ) {
            let strategy = if alternate { Strategy::AlternatingUsers } else { Strategy::SingleUser };
            let pending = Login { user: pending_user, host: pending_host, port: pending_port };
            let mut f = SetFacts::new(strategy, login(current_user), pending);
            if let (_, SetDecision::Act(_)) = run(&mut f, &w) {
                let after = SetFacts { pending_login: Attempt::LogsIn, ..f };
                prop_assert_eq!(decide_set(&after), SetDecision::AlreadyDone);
                // And a fresh step, which learns only that the pending credentials log in, stops there too.
                let mut fresh = SetFacts::new(strategy, f.current, f.pending);
                let (asked, end) = run(&mut fresh, &World { pending: true, ..w });
                prop_assert_eq!(asked, vec![Probe::PendingLogin]);
                prop_assert_eq!(end, SetDecision::AlreadyDone);
            }
        }
    }
}
