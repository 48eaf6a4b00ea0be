//! Exit codes the binaries share, documented in the README, so a script can tell "fix your
//! flags" from "fix your config" from "start Redis" from "the run had failures" (fd's
//! `exit_codes.rs` is the model).

use std::error::Error;

use crate::config::ConfigError;
use crate::fleet::FleetError;
use crate::llm::LlmError;
use crate::queue::QueueError;
use crate::results::ResultsError;
use crate::run::RunError;
use crate::worker::WorkerError;

/// How a binary ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything asked for was done.
    Success = 0,
    /// Any other error (a path that cannot be read, a git failure, a malformed value...).
    Failure = 1,
    /// Bad command-line usage: clap's own code, also for a flag value such as a bad glob.
    Usage = 2,
    /// The configuration (file, `TARS_*` variable or flag value) is invalid.
    Config = 3,
    /// Redis, the LLM server or the Docker engine cannot be reached.
    Unavailable = 4,
    /// `run --wait` finished, but some tasks ended failed or dead.
    RunFailed = 5,
    /// `run --wait --timeout` gave up before the run finished (the run goes on).
    Timeout = 6,
    /// Redis lost a run's data while `run --wait` waited: it restarted without persistence,
    /// or was flushed. Make it durable (`appendonly yes`) and run again.
    RedisDataLost = 7,
    /// `land` made its commits, but some done patches were skipped (each says why).
    SomeSkipped = 8,
}

impl ExitCode {
    /// The code for an error: the first error in its chain (outermost first) that has a code
    /// of its own decides; anything else is [`ExitCode::Failure`].
    pub fn of_chain<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> ExitCode {
        chain
            .into_iter()
            .find_map(ExitCode::of)
            .unwrap_or(ExitCode::Failure)
    }

    /// The code this one error has, if any.
    pub fn of(e: &(dyn Error + 'static)) -> Option<ExitCode> {
        // `#[error(transparent)]` wrappers hide the wrapped error from `source()`: look inside.
        match e.downcast_ref::<RunError>() {
            Some(RunError::Queue(q)) => return ExitCode::of(q),
            Some(RunError::WaitTimeout { .. }) => return Some(ExitCode::Timeout),
            Some(RunError::DataLost { .. } | RunError::LostInRestart { .. }) => {
                return Some(ExitCode::RedisDataLost);
            }
            Some(RunError::Stuck { .. }) => return Some(ExitCode::Unavailable),
            Some(RunError::BadRunId(_)) => return Some(ExitCode::Failure),
            None => {}
        }
        if let Some(ResultsError::Queue(q)) = e.downcast_ref::<ResultsError>() {
            return ExitCode::of(q);
        }
        match e.downcast_ref::<WorkerError>() {
            Some(WorkerError::Queue(q)) => return ExitCode::of(q),
            Some(WorkerError::Llm(l)) => return ExitCode::of(l),
            Some(WorkerError::VerifierSetup(_)) => return Some(ExitCode::Config),
            None => {}
        }
        // What `land` was asked to do cannot be done as asked: say another branch, --force,
        // --base or --author.
        if let Some(
            crate::land::LandError::NoCommit { .. }
            | crate::land::LandError::BadBranch { .. }
            | crate::land::LandError::BranchExists { .. }
            | crate::land::LandError::BranchCheckedOut { .. }
            | crate::land::LandError::BadAuthor { .. }
            | crate::land::LandError::UnknownCommit { .. },
        ) = e.downcast_ref::<crate::land::LandError>()
        {
            return Some(ExitCode::Usage);
        }
        // Where to apply must be said (cd into the repository or --repo): a usage error.
        if let Some(
            crate::apply::ApplyError::RepoNotChosen { .. }
            | crate::apply::ApplyError::RecordedRepoMissing { .. },
        ) = e.downcast_ref::<crate::apply::ApplyError>()
        {
            return Some(ExitCode::Usage);
        }
        if let Some(ResultsError::LinkedDefault { .. }) = e.downcast_ref::<ResultsError>() {
            return Some(ExitCode::Usage);
        }
        // `--verify auto` on a repository that declares no check: say which, or --no-verify.
        if e.downcast_ref::<crate::verify::VerifyError>().is_some() {
            return Some(ExitCode::Usage);
        }
        if let Some(c) = e.downcast_ref::<ConfigError>() {
            return Some(match c {
                ConfigError::Flag(_) => ExitCode::Usage,
                _ => ExitCode::Config,
            });
        }
        if let Some(q) = e.downcast_ref::<QueueError>() {
            // Credentials, ACL permissions and trusted CAs are configuration to fix, not a
            // server to start.
            if matches!(
                q,
                QueueError::AuthFailed { .. }
                    | QueueError::NoPermission { .. }
                    | QueueError::TlsUntrusted { .. }
                    | QueueError::ServerTooOld { .. }
            ) {
                return Some(ExitCode::Config);
            }
            // Redis is up but takes no writes: like unreachable, wait for an operator.
            if q.is_out_of_memory() {
                return Some(ExitCode::Unavailable);
            }
            return q.is_transient().then_some(ExitCode::Unavailable);
        }
        if let Some(l) = e.downcast_ref::<LlmError>() {
            // `llm.api` names the other protocol than the server's.
            if let LlmError::NotOllama { .. } = l {
                return Some(ExitCode::Config);
            }
            return matches!(l, LlmError::Unreachable { .. } | LlmError::Timeout { .. })
                .then_some(ExitCode::Unavailable);
        }
        match e.downcast_ref::<FleetError>() {
            Some(FleetError::Unreachable { .. }) => return Some(ExitCode::Unavailable),
            Some(
                FleetError::BadMemory { .. }
                | FleetError::BadCpus { .. }
                | FleetError::BadPids { .. }
                | FleetError::BadCount { .. }
                | FleetError::SecretInEnv { .. },
            ) => return Some(ExitCode::Usage),
            Some(FleetError::SecretFile(_)) => return Some(ExitCode::Config),
            _ => {}
        }
        None
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_class_has_its_code() {
        let refused = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        let unreachable = QueueError::Unreachable {
            url: "redis://x".into(),
            source: refused,
        };
        assert_eq!(ExitCode::of(&unreachable), Some(ExitCode::Unavailable));
        let cfg = ConfigError::Invalid {
            key: "llm.url",
            value: "x".into(),
            allowed: "a URL".into(),
        };
        assert_eq!(ExitCode::of(&cfg), Some(ExitCode::Config));
        // Wrapped by a stage's error type, the inner error still decides.
        let wrapped = RunError::Queue(unreachable);
        assert_eq!(
            ExitCode::of_chain([&wrapped as &dyn Error]),
            ExitCode::Unavailable
        );
        let other = RunError::Queue(QueueError::NoRuns);
        assert_eq!(
            ExitCode::of_chain([&other as &dyn Error]),
            ExitCode::Failure
        );
        let timeout = RunError::WaitTimeout {
            run: "r".into(),
            secs: 1,
            finished: 0,
            total: 1,
        };
        assert_eq!(ExitCode::of(&timeout), Some(ExitCode::Timeout));
        let lost = RunError::DataLost {
            run: "r".into(),
            finished: 0,
            total: 1,
        };
        assert_eq!(ExitCode::of(&lost), Some(ExitCode::RedisDataLost));
        let full = RunError::Queue(QueueError::OutOfMemory {
            detail: "it uses 2 bytes of its maxmemory of 1".into(),
        });
        assert_eq!(
            ExitCode::of_chain([&full as &dyn Error]),
            ExitCode::Unavailable
        );
        // Refused credentials or a missing ACL permission: fix the configuration.
        let auth = RunError::Queue(QueueError::AuthFailed {
            url: "redis://:***@h:1".into(),
            detail: "WRONGPASS".into(),
        });
        assert_eq!(ExitCode::of_chain([&auth as &dyn Error]), ExitCode::Config);
        let noperm = WorkerError::Queue(QueueError::NoPermission {
            command: Some("xadd".into()),
            detail: "x".into(),
        });
        assert_eq!(
            ExitCode::of_chain([&noperm as &dyn Error]),
            ExitCode::Config
        );
    }
}
