//! Layered configuration: defaults < `tars.toml` (or `--config` / `TARS_CONFIG`) < `TARS_*`
//! environment (`__` between nested keys) < command-line flags.
//!
//! Everything is validated here, once, so that a typo in a deployment fails at start-up with the
//! key's name and what it accepts, not minutes later inside a worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scan::ScanOptions;
use crate::secret::Secret;

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "TARS_CONFIG";
/// The file read from the working directory when no file is named.
pub const DEFAULT_CONFIG_FILE: &str = "tars.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist: create it or drop --config / TARS_CONFIG")]
    MissingFile { path: String },
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A flag's value is wrong (a usage error, not the configuration's).
    #[error(transparent)]
    Flag(crate::scan::ScanError),
    #[error(
        "configuration key `{key}` names the secret file {path}, which cannot be read: {source}. Mount the secret there or fix the path"
    )]
    SecretFile {
        key: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration key `{key}` names the file {path}, which {problem}")]
    TlsFile {
        key: &'static str,
        path: String,
        problem: String,
    },
    #[error("configuration key `{key}` = {value:?} is invalid: {allowed}")]
    Invalid {
        key: &'static str,
        value: String,
        allowed: String,
    },
}

/// How many requests the fleet sends one LLM endpoint at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxInFlight {
    /// At most this many (the server's `OLLAMA_NUM_PARALLEL`, llama.cpp's `--parallel`).
    Fixed(u32),
    /// Found by the fleet: read from the server where it says (llama.cpp's `/props`), else
    /// raised while latency holds and lowered on queueing, 429/503 and timeouts.
    Auto,
}

impl MaxInFlight {
    /// The value the permit scripts take: the count, or 0 for the limit `auto` found.
    pub fn script_arg(self) -> u32 {
        match self {
            MaxInFlight::Fixed(n) => n,
            MaxInFlight::Auto => 0,
        }
    }
}

impl Serialize for MaxInFlight {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxInFlight::Fixed(n) => s.serialize_u32(*n),
            MaxInFlight::Auto => s.serialize_str("auto"),
        }
    }
}

/// A count or `"auto"` (a count may come as text, from an environment variable).
impl<'de> Deserialize<'de> for MaxInFlight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let bad = |v: &dyn std::fmt::Display| {
            serde::de::Error::custom(format!(
                "max_in_flight must be a count of at least 1 or \"auto\", not {v}"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::N(n) => u32::try_from(n)
                .ok()
                .filter(|&n| n >= 1)
                .map(MaxInFlight::Fixed)
                .ok_or_else(|| bad(&n)),
            Raw::S(s) if s.trim().eq_ignore_ascii_case("auto") => Ok(MaxInFlight::Auto),
            Raw::S(s) => s
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&n| n >= 1)
                .map(MaxInFlight::Fixed)
                .ok_or_else(|| bad(&format!("{s:?}"))),
        }
    }
}

/// One LLM server of several (`[[llm.endpoints]]`): what it does not set is taken from `[llm]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub url: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub api: Option<LlmApi>,
    #[serde(default)]
    pub max_in_flight: Option<MaxInFlight>,
}

/// Which wire protocol the LLM endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmApi {
    /// Ollama's native `/api/chat`: the only one that lets us set `num_ctx` per request.
    Ollama,
    /// `/v1/chat/completions` as served by Ollama, llama.cpp, vLLM, LM Studio...
    Openai,
}

/// By hand, so that a wrong value names the choices (serde's derived message does not, through
/// config-rs).
impl<'de> Deserialize<'de> for LlmApi {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "ollama" => Ok(LlmApi::Ollama),
            "openai" => Ok(LlmApi::Openai),
            _ => Err(serde::de::Error::custom(format!(
                "{s:?} is not an LLM API: use \"ollama\" or \"openai\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub redis: RedisConfig,
    pub llm: LlmConfig,
    pub worker: WorkerConfig,
    pub queue: QueueConfig,
    pub scan: ScanOptions,
    pub verify: VerifyConfig,
}

/// `[verify]`: checking gated patches with the repository's own build and tests (the verify
/// stage, `worker --role verify`). The dispatcher reads `command` and `repairs` and records them
/// on the run; a verifier reads the rest, and runs a run's command only if its own
/// configuration allows it (Redis is not trusted to name a command to run).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// The check: a shell command run at the repository's root (`cargo test -q`), or `"auto"`
    /// to pick one from the repository's files. Unset: runs are not verified.
    pub command: Option<String>,
    /// Rounds in which a patch that failed its check goes back to the model with the error.
    pub repairs: u32,
    /// A check running longer is killed (its whole process group) and counts as failed.
    pub timeout_secs: u64,
    /// Address-space limit of the check's processes (`RLIMIT_AS`), in MiB; 0: none. Node and
    /// the JVM reserve far more address space than they use: raise it for them.
    pub memory_mb: u64,
    /// Limit on the processes of the check's user (`RLIMIT_NPROC`); 0: none. Containers get a
    /// real pids limit from the engine as well.
    pub max_processes: u64,
    /// Let the check reach the network. Off: it runs in a network namespace of its own
    /// (`unshare`), where the platform allows one, so a test cannot call out.
    pub network: bool,
    /// Directories a verifier serves: it verifies a run only when the repository the run
    /// recorded lies under one of them (a Redis writer must not point it at another).
    /// Empty: the verifier's working directory.
    pub roots: Vec<PathBuf>,
    /// Commands this verifier runs besides `command` and the ones `"auto"` picks from.
    pub allow: Vec<String>,
    /// Where scratch trees live (one per run, build outputs kept between tasks). Default:
    /// `$TARS_CACHE/verify` or `~/.cache/tars-fleet/verify`.
    pub dir: Option<PathBuf>,
    /// Bytes of the check's output kept on the task (its tail) and given to the model (the
    /// first error).
    pub output_bytes: usize,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            command: None,
            repairs: 2,
            timeout_secs: 600,
            memory_mb: 0,
            max_processes: 0,
            network: false,
            roots: Vec::new(),
            allow: Vec::new(),
            dir: None,
            output_bytes: 4096,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, `rediss://` for TLS, `unix:///path`, or a
    /// Redis Cluster: `redis+cluster://[user:password@]host:port[,host:port...]` (any nodes; the
    /// rest are discovered), `rediss+cluster://` for TLS.
    pub url: String,
    /// After recording a result or listing a run, wait until this many replicas have it
    /// (`WAIT`), so that a failover does not lose it. Unset: 1 for a cluster URL, 0 otherwise.
    pub wait_replicas: Option<u32>,
    /// How long that wait may take, in milliseconds, before going on with a warning. At most
    /// 2000: `WAIT` must go on the connection that wrote (it waits for that client's writes),
    /// and Redis answers one connection's commands in order, so the lease renewals and other
    /// results queued behind it wait too (and past the 10 s response timeout they would fail).
    pub wait_timeout_ms: u64,
    /// A file holding the Redis password (a Docker or Kubernetes secret mounted at
    /// `/run/secrets/...`), so the password is in neither the URL nor the environment, where
    /// `docker inspect` and `ps` show it. Wins over a password in the URL.
    pub password_file: Option<PathBuf>,
    /// The password read from `password_file`, kept out of `Debug` output.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// `rediss://` only: the PEM file of the CA that signed the server's certificate (a private
    /// CA). Unset: the system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// `rediss://` only, for servers that verify clients (`tls-auth-clients yes`): this
    /// client's PEM certificate chain; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// What the three files above hold, read and parsed at load; `Debug` shows no content.
    #[serde(skip)]
    pub tls: Option<redis::TlsCertificates>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub api: LlmApi,
    /// Base URL of the server, without the `/api/chat` or `/v1/...` path.
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer` to OpenAI-compatible servers that want one.
    pub api_key: Option<Secret>,
    /// A file holding the API key (a mounted secret), read at start; wins over `api_key`.
    pub api_key_file: Option<PathBuf>,
    /// Context window asked of Ollama; prompts are sized to fit it, since Ollama truncates
    /// silently past it.
    pub num_ctx: u32,
    /// Upper bound on the answer's length in tokens.
    pub max_answer_tokens: u32,
    pub temperature: f32,
    /// Whole-request deadline: a local model on a small machine can take minutes.
    pub timeout_secs: u64,
    /// Attempts inside one task attempt for connection errors, 5xx and 503 (a busy server).
    pub retries: u32,
    /// Fleet-wide cap on concurrent requests to this endpoint, enforced through Redis: a
    /// server answers only `OLLAMA_NUM_PARALLEL` at once, whatever the number of workers.
    /// `"auto"`: found by the fleet.
    pub max_in_flight: Option<MaxInFlight>,
    /// Several LLM servers: each task goes to one with free capacity. Empty: the one
    /// endpoint `url`/`model`/`api`/`max_in_flight`.
    pub endpoints: Vec<EndpointConfig>,
    /// Answers asked for per task attempt before a gate failure is final; each new ask says
    /// why the last answer was rejected.
    pub answer_attempts: u32,
    /// Allows an API key or URL credentials over plain `http://` to another host, where anyone
    /// on the path can read them. Off: such a configuration is refused at start.
    pub allow_insecure_credentials: bool,
    /// Answers asked for at once per TODO: the first at `temperature`, the others at 0.8 at
    /// least, so that they differ. Each is gated; with verification the first one that passes
    /// the repository's check wins: the fleet's capacity spent on correctness.
    pub candidates: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Tasks one worker process runs at once.
    pub concurrency: usize,
    /// After SIGTERM, how long in-flight tasks may run before they are handed back.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// A task whose worker has not renewed it for this long is given to another worker.
    pub lease_secs: u64,
    /// Attempts per task before it is dead-lettered.
    pub max_attempts: u32,
    /// Finished runs and their tasks expire after this many days.
    pub retention_days: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            wait_replicas: None,
            wait_timeout_ms: 500,
            password_file: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            tls: None,
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            api: LlmApi::Ollama,
            url: "http://127.0.0.1:11434".into(),
            model: "qwen2.5-coder:7b".into(),
            api_key: None,
            api_key_file: None,
            num_ctx: 8192,
            max_answer_tokens: 2048,
            temperature: 0.2,
            timeout_secs: 300,
            retries: 3,
            max_in_flight: None,
            endpoints: Vec::new(),
            answer_attempts: 2,
            allow_insecure_credentials: false,
            candidates: 1,
        }
    }
}

impl LlmConfig {
    /// The URL as logs, errors, Redis fields and permit keys show it: without a password.
    pub fn shown_url(&self) -> String {
        crate::secret::redact_url(&self.url)
    }

    /// Each endpoint as a whole LLM configuration: `[[llm.endpoints]]` with what they leave
    /// out taken from `[llm]`, or `[llm]` itself when there are none.
    pub fn each_endpoint(&self) -> Vec<LlmConfig> {
        if self.endpoints.is_empty() {
            return vec![LlmConfig {
                endpoints: Vec::new(),
                ..self.clone()
            }];
        }
        self.endpoints
            .iter()
            .map(|e| LlmConfig {
                url: e.url.clone(),
                model: e.model.clone().unwrap_or_else(|| self.model.clone()),
                api: e.api.unwrap_or(self.api),
                max_in_flight: e.max_in_flight.or(self.max_in_flight),
                endpoints: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    /// The name of the endpoint in Redis keys and in `status`: its URL without credentials or
    /// a final `/`.
    pub fn endpoint_key(&self) -> String {
        self.shown_url().trim_end_matches('/').to_string()
    }

    /// Whether credentials (an API key, or userinfo in the URL) would travel in clear text to
    /// another machine: plain `http://` to a host that is not this one's loopback.
    fn sends_credentials_in_clear(&self) -> bool {
        let Ok(u) = reqwest::Url::parse(&self.url) else {
            return false;
        };
        let has_credentials =
            self.api_key.is_some() || !u.username().is_empty() || u.password().is_some();
        let host = u.host_str().unwrap_or("localhost");
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        has_credentials && u.scheme() == "http" && !loopback
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 1,
            shutdown_grace_secs: 30,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lease_secs: 60,
            max_attempts: 5,
            retention_days: 7,
        }
    }
}

/// What a binary's flags add, applied last and validated with the rest, so that the
/// [`Config`] a program runs with is checked once and never changed afterwards (ripgrep's
/// `HiArgs`, fd's `construct_config`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Single values by dotted key (`worker.concurrency`, `redis.url`).
    pub values: Vec<(&'static str, String)>,
    /// `--include` globs, added to `scan.include`.
    pub include: Vec<String>,
    /// `--exclude` globs, added to `scan.exclude`.
    pub exclude: Vec<String>,
}

impl Overrides {
    /// Sets `key` when the flag was given.
    pub fn set(&mut self, key: &'static str, value: Option<impl ToString>) -> &mut Overrides {
        if let Some(v) = value {
            self.values.push((key, v.to_string()));
        }
        self
    }
}

/// A secret from a file: its content less the trailing newline that `echo` and editors add.
pub fn read_secret(key: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let err = |source| ConfigError::SecretFile {
        key,
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(err)?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        )));
    }
    Ok(Secret::new(value))
}

/// The PEM file named by `key`, which must hold at least one `what` ("certificate" or "private
/// key", checked by `parses`).
fn read_pem(
    key: &'static str,
    path: &Path,
    what: &str,
    parses: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, ConfigError> {
    let err = |problem: String| ConfigError::TlsFile {
        key,
        path: path.display().to_string(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot be read: {e}")))?;
    if !parses(&bytes) {
        return Err(err(format!(
            "holds no PEM {what} (a block such as -----BEGIN {}-----)",
            what.to_ascii_uppercase()
        )));
    }
    Ok(bytes)
}

impl RedisConfig {
    /// Reads and parses `ca_file`, `client_cert_file` and `client_key_file` (after
    /// [`Config::validate`] checked they go with a `rediss://` URL).
    fn read_tls(&self) -> Result<Option<redis::TlsCertificates>, ConfigError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = |b: &[u8]| {
            let all: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(b).collect();
            all.is_ok_and(|v| !v.is_empty())
        };
        let root_cert = match &self.ca_file {
            Some(p) => Some(read_pem("redis.ca_file", p, "certificate", certs)?),
            None => None,
        };
        let client_tls = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read_pem("redis.client_cert_file", cert, "certificate", certs)?,
                client_key: read_pem("redis.client_key_file", key, "private key", |b| {
                    PrivateKeyDer::from_pem_slice(b).is_ok()
                })?,
            }),
            _ => None,
        };
        Ok(
            (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
                client_tls,
                root_cert,
            }),
        )
    }
}

impl Config {
    /// Loads the layers. `file` is the `--config` flag; `env` is the process environment, passed
    /// in so that tests do not have to mutate the real one.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let defaults = config::Config::try_from(&Config::default())?;
        let mut builder = config::Config::builder().add_source(defaults);

        let named: Option<PathBuf> = file
            .map(Path::to_path_buf)
            .or_else(|| env.get(CONFIG_ENV).map(PathBuf::from));
        match named {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::MissingFile {
                        path: path.display().to_string(),
                    });
                }
                builder = builder.add_source(
                    config::File::from(path.as_path()).format(config::FileFormat::Toml),
                );
            }
            None => {
                builder = builder.add_source(
                    config::File::new(DEFAULT_CONFIG_FILE, config::FileFormat::Toml)
                        .required(false),
                );
            }
        }

        // Only `TARS_<SECTION>__<KEY>` variables are configuration; others with the prefix
        // (TARS_LOG, TARS_CONFIG, TARS_CACHE...) belong to the binaries and scripts.
        let tars_env: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("TARS_")
                    .is_some_and(|rest| rest.contains("__"))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("TARS")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(tars_env)),
        );
        for (key, value) in &overrides.values {
            builder = builder.set_override(*key, value.as_str())?;
        }
        // Checked apart first, so that a bad one is reported as the flag it came from.
        crate::scan::build_overrides(Path::new("."), &overrides.include, &overrides.exclude)
            .map_err(ConfigError::Flag)?;
        let mut cfg: Config = builder.build()?.try_deserialize()?;
        cfg.scan.include.extend(overrides.include.iter().cloned());
        cfg.scan.exclude.extend(overrides.exclude.iter().cloned());
        if let Some(path) = &cfg.redis.password_file {
            cfg.redis.password = Some(read_secret("redis.password_file", path)?);
        }
        if let Some(path) = &cfg.llm.api_key_file {
            cfg.llm.api_key = Some(read_secret("llm.api_key_file", path)?);
        }
        cfg.validate()?;
        cfg.redis.tls = cfg.redis.read_tls()?;
        Ok(cfg)
    }

    /// Loads from the real process environment.
    pub fn from_env(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        // Not `env::vars()`, which panics on the first variable that is not UTF-8: someone
        // else's is none of our business, but one of ours cannot be read as asked.
        let mut env: HashMap<String, String> = HashMap::new();
        for (k, v) in std::env::vars_os() {
            if let (Some(key), Some(value)) = (k.to_str(), v.to_str()) {
                env.insert(key.to_string(), value.to_string());
            } else if k.as_encoded_bytes().starts_with(b"TARS_") {
                return Err(ConfigError::Load(config::ConfigError::Message(format!(
                    "environment variable {k:?} is not valid UTF-8: set it to UTF-8 text or unset it"
                ))));
            }
        }
        Config::load(file, &env, overrides)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, value: impl ToString, allowed: &str) -> ConfigError {
            ConfigError::Invalid {
                key,
                value: value.to_string(),
                allowed: allowed.to_string(),
            }
        }
        let url = &self.redis.url;
        let tls_url = url.starts_with("rediss://") || url.starts_with("rediss+cluster://");
        if !(tls_url
            || url.starts_with("redis://")
            || url.starts_with("redis+cluster://")
            || url.starts_with("unix://"))
        {
            return Err(invalid(
                "redis.url",
                crate::secret::redact_url(url),
                "a URL such as redis://127.0.0.1:6379, or for a Redis Cluster \
                 redis+cluster://HOST:PORT[,HOST:PORT...]",
            ));
        }
        if self.redis.wait_timeout_ms == 0 || self.redis.wait_timeout_ms > 2_000 {
            return Err(invalid(
                "redis.wait_timeout_ms",
                self.redis.wait_timeout_ms,
                "a whole number of milliseconds from 1 to 2000 (WAIT holds up the commands \
                 queued behind it on its connection)",
            ));
        }
        if self.redis.wait_replicas.is_some_and(|n| n > 16) {
            return Err(invalid(
                "redis.wait_replicas",
                self.redis.wait_replicas.unwrap_or_default(),
                "a whole number of replicas from 0 to 16 (0: no WAIT)",
            ));
        }
        for (key, file) in [
            ("redis.ca_file", &self.redis.ca_file),
            ("redis.client_cert_file", &self.redis.client_cert_file),
            ("redis.client_key_file", &self.redis.client_key_file),
        ] {
            if let Some(path) = file
                && !tls_url
            {
                return Err(invalid(
                    key,
                    path.display(),
                    &format!(
                        "set only with a rediss:// or rediss+cluster:// (TLS) redis.url, and \
                         redis.url is {}",
                        crate::secret::redact_url(&self.redis.url)
                    ),
                ));
            }
        }
        match (&self.redis.client_cert_file, &self.redis.client_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "redis.client_key_file",
                    "(unset)",
                    "the private key of redis.client_cert_file: set both or neither",
                ));
            }
            (None, Some(p)) => {
                return Err(invalid(
                    "redis.client_cert_file",
                    "(unset)",
                    &format!(
                        "the certificate of the key redis.client_key_file = {}: set both or \
                         neither",
                        p.display()
                    ),
                ));
            }
            _ => {}
        }
        let each = self.llm.each_endpoint();
        let mut seen = std::collections::HashSet::new();
        for e in &each {
            let key = if self.llm.endpoints.is_empty() {
                "llm.url"
            } else {
                "llm.endpoints.url"
            };
            if reqwest::Url::parse(&e.url)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
            {
                return Err(invalid(
                    key,
                    e.shown_url(),
                    "an http(s) URL such as http://127.0.0.1:11434",
                ));
            }
            if e.sends_credentials_in_clear() && !e.allow_insecure_credentials {
                return Err(invalid(
                    key,
                    e.shown_url(),
                    "an https:// URL, since an API key or password is set and would cross the \
                     network in clear text (to send it anyway, e.g. on a private network, set \
                     llm.allow_insecure_credentials = true)",
                ));
            }
            if e.model.trim().is_empty() {
                return Err(invalid(
                    "llm.model",
                    &e.model,
                    "a model name such as qwen2.5-coder:7b",
                ));
            }
            if !seen.insert(e.endpoint_key()) {
                return Err(invalid(
                    "llm.endpoints",
                    e.shown_url(),
                    "each endpoint once (this URL is listed twice)",
                ));
            }
        }
        if self.llm.num_ctx < 512 {
            return Err(invalid("llm.num_ctx", self.llm.num_ctx, "at least 512"));
        }
        if self.llm.max_answer_tokens == 0 || self.llm.max_answer_tokens >= self.llm.num_ctx {
            return Err(invalid(
                "llm.max_answer_tokens",
                self.llm.max_answer_tokens,
                "more than 0 and less than llm.num_ctx",
            ));
        }
        if !(0.0..=2.0).contains(&self.llm.temperature) {
            return Err(invalid(
                "llm.temperature",
                self.llm.temperature,
                "a number from 0.0 to 2.0",
            ));
        }
        // Every duration is bounded: a huge value would overflow when turned into
        // milliseconds (a lease of 18446744073709552 s wraps to 384 ms) or into an EXPIRE.
        for (key, value, range) in [
            ("llm.timeout_secs", self.llm.timeout_secs, 1..=86_400),
            ("queue.lease_secs", self.queue.lease_secs, 3..=86_400),
            (
                "worker.shutdown_grace_secs",
                self.worker.shutdown_grace_secs,
                0..=86_400,
            ),
            ("queue.retention_days", self.queue.retention_days, 1..=3_650),
            ("verify.timeout_secs", self.verify.timeout_secs, 1..=86_400),
        ] {
            if !range.contains(&value) {
                let unit = if key.ends_with("_days") {
                    "days"
                } else {
                    "seconds"
                };
                let why = if key == "queue.lease_secs" {
                    " (the lease is renewed every third of it)"
                } else {
                    ""
                };
                return Err(invalid(
                    key,
                    value,
                    &format!(
                        "a whole number of {unit} from {} to {}{why}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        if self.llm.answer_attempts == 0 || self.llm.answer_attempts > 10 {
            return Err(invalid(
                "llm.answer_attempts",
                self.llm.answer_attempts,
                "a whole number from 1 to 10",
            ));
        }
        if self.worker.concurrency == 0 || self.worker.concurrency > 256 {
            return Err(invalid(
                "worker.concurrency",
                self.worker.concurrency,
                "a whole number from 1 to 256",
            ));
        }
        if self.queue.max_attempts == 0 {
            return Err(invalid("queue.max_attempts", 0, "at least 1"));
        }
        if self.scan.tags.is_empty()
            || self
                .scan
                .tags
                .iter()
                .any(|t| t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(invalid(
                "scan.tags",
                format!("{:?}", self.scan.tags),
                "a non-empty list of words such as [\"TODO\", \"FIXME\"]",
            ));
        }
        for (key, globs) in [
            ("scan.include", &self.scan.include),
            ("scan.exclude", &self.scan.exclude),
        ] {
            for glob in globs {
                let one = std::slice::from_ref(glob);
                let (inc, exc): (&[String], &[String]) = if key == "scan.include" {
                    (one, &[])
                } else {
                    (&[], one)
                };
                if let Err(e) = crate::scan::build_overrides(Path::new("."), inc, exc) {
                    let reason = match e {
                        crate::scan::ScanError::BadGlob { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    return Err(invalid(
                        key,
                        glob,
                        &format!(
                            "{reason}; use a gitignore-style glob relative to the scan root, \
                             such as \"src/**\" or \"*.rs\""
                        ),
                    ));
                }
            }
        }
        if self.llm.candidates == 0 || self.llm.candidates > 16 {
            return Err(invalid(
                "llm.candidates",
                self.llm.candidates,
                "from 1 to 16 answers per TODO",
            ));
        }
        if self.verify.repairs > 10 {
            return Err(invalid(
                "verify.repairs",
                self.verify.repairs,
                "from 0 to 10",
            ));
        }
        if let Some(c) = &self.verify.command
            && c.trim().is_empty()
        {
            return Err(invalid(
                "verify.command",
                c,
                "a shell command such as \"cargo test -q\", or \"auto\"",
            ));
        }
        if self.verify.output_bytes < 256 {
            return Err(invalid(
                "verify.output_bytes",
                self.verify.output_bytes,
                "at least 256",
            ));
        }
        if self.scan.max_block_lines < 5 {
            return Err(invalid(
                "scan.max_block_lines",
                self.scan.max_block_lines,
                "at least 5",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
