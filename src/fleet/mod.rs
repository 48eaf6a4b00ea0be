//! A fleet of worker containers driven through Docker's API (bollard): for users who want the
//! dispatcher to manage workers on one machine without writing a compose file. Beyond one
//! machine, use an orchestrator (see deploy/); this is deliberately not one.
//!
//! Every container carries our labels, so the fleet is whatever the engine says it is: no
//! state file to drift, and exited or leaked containers are found and reaped by label. Workers
//! get no Docker socket, and no secret in their environment (see [`secrets`]).

mod limits;
pub mod secrets;

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, Mount, MountType,
    NetworkCreateRequest, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

pub use limits::{Limits, parse_cpus, parse_memory};
pub use secrets::{WorkerEnv, WorkerSecret, worker_env};
use serde::Serialize;

/// The network every fleet container joins (shared with the compose file).
pub const NETWORK: &str = "tars-network";
/// Marks a container as one of ours.
pub const LABEL_FLEET: &str = "dev.tars-fleet.fleet";
pub const LABEL_MEMORY: &str = "dev.tars-fleet.memory";
pub const LABEL_CPUS: &str = "dev.tars-fleet.cpus";
pub const LABEL_PIDS: &str = "dev.tars-fleet.pids";
pub const LABEL_INDEX: &str = "dev.tars-fleet.index";
/// Container name prefix: `tars-worker-1`, `tars-worker-2`...
pub const NAME_PREFIX: &str = "tars-worker-";
pub const DEFAULT_IMAGE: &str = "tars-fleet:latest";

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "cannot reach the Docker engine at {endpoint}: {detail}. Start Docker, or set DOCKER_HOST to the engine's address"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error(
        "image {image} not found: build it with `compose/build-offline` (no registry) or `docker build -t {image} .`, or pass --image"
    )]
    ImageMissing { image: String },
    #[error("--memory {value:?} is not a size: use a number with k, m or g (e.g. 512m, 1g)")]
    BadMemory { value: String },
    #[error("--cpus {value:?} is not a CPU count: use a positive number such as 0.5 or 2")]
    BadCpus { value: String },
    #[error("--pids {value} is too small: a worker needs at least 16")]
    BadPids { value: i64 },
    #[error("--workers {value} is out of range: use 0 to 256")]
    BadCount { value: usize },
    #[error(
        "a container named {name} exists and is not part of the fleet: rename or remove it (`docker rm -f {name}`)"
    )]
    NameConflict { name: String },
    #[error(
        "network {name} exists with driver {driver}, not bridge: remove it (`docker network rm {name}`) or free the name"
    )]
    NetworkConflict { name: String, driver: String },
    #[error("no fleet is running: start one with `dispatcher fleet up --workers N`")]
    NoFleet,
    #[error("{name} is not passed to the workers: {hint}")]
    SecretInEnv { name: String, hint: String },
    #[error("{0}")]
    SecretFile(String),
    #[error("cannot keep the workers' secret files in {path}: {detail}")]
    SecretStore { path: String, detail: String },
    #[error("Docker engine: {0}")]
    Docker(#[from] bollard::errors::Error),
}

/// What `fleet up` starts.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub image: String,
    pub limits: Limits,
    /// `KEY=VALUE` for the workers (their Redis and LLM as seen from inside the network); no
    /// secret: those are in `secrets` or, for a fleet that runs, already in `mounts`.
    pub env: Vec<String>,
    /// Written into a private directory by `up` and mounted into each worker it starts.
    pub secrets: Vec<WorkerSecret>,
    /// Files of this machine mounted read-only into the workers: `(source, target)`.
    pub mounts: Vec<(String, String)>,
    /// Seconds Docker waits after SIGTERM before SIGKILL: the worker's grace plus hand-back.
    pub stop_timeout: i64,
}

/// One worker container as `fleet status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub id: String,
    pub state: String,
    pub health: Option<String>,
    pub memory_limit: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub memory_usage: Option<u64>,
    /// From the worker's heartbeat in Redis, joined by container hostname.
    pub tasks_done: Option<u64>,
    pub current: Option<String>,
}

pub struct Fleet {
    docker: Docker,
}

fn endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

impl Fleet {
    /// Connects to the engine named by DOCKER_HOST (or the local socket) and agrees on an API
    /// version, since engines as old as 20.10 (API 1.41) are common.
    pub async fn connect() -> Result<Fleet, FleetError> {
        let unreachable = |e: bollard::errors::Error| FleetError::Unreachable {
            endpoint: endpoint(),
            detail: e.to_string(),
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        Ok(Fleet { docker })
    }

    async fn ours(&self, all: bool) -> Result<Vec<bollard::models::ContainerSummary>, FleetError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![LABEL_FLEET.to_string()]);
        let opts = ListContainersOptionsBuilder::new()
            .all(all)
            .filters(&filters)
            .build();
        let mut v = self.docker.list_containers(Some(opts)).await?;
        v.sort_by_key(|c| index_of(c.labels.as_ref()));
        Ok(v)
    }

    /// Removes our containers that exited or died (crashed, OOM-killed, leaked by an
    /// interrupted command). Returns their names.
    pub async fn reap(&self) -> Result<Vec<String>, FleetError> {
        let mut reaped = Vec::new();
        let mut sources = Vec::new();
        for c in self.ours(true).await? {
            let dead = matches!(
                c.state,
                Some(
                    ContainerSummaryStateEnum::EXITED
                        | ContainerSummaryStateEnum::DEAD
                        | ContainerSummaryStateEnum::CREATED
                )
            );
            if dead && let Some(id) = &c.id {
                sources.extend(self.mount_sources(id).await);
                self.remove(id).await?;
                reaped.push(name_of(&c));
            }
        }
        self.release_secrets(sources).await?;
        Ok(reaped)
    }

    async fn remove(&self, id: &str) -> Result<(), FleetError> {
        let opts = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates tars-network when it is missing; refuses a same-named network of another kind.
    pub async fn ensure_network(&self) -> Result<(), FleetError> {
        match self.docker.inspect_network(NETWORK, None).await {
            Ok(n) => {
                let driver = n.driver.unwrap_or_default();
                if driver != "bridge" && driver != "overlay" {
                    return Err(FleetError::NetworkConflict {
                        name: NETWORK.into(),
                        driver,
                    });
                }
                Ok(())
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                let mut labels = HashMap::new();
                labels.insert(LABEL_FLEET.to_string(), "network".to_string());
                self.docker
                    .create_network(NetworkCreateRequest {
                        name: NETWORK.into(),
                        driver: Some("bridge".into()),
                        labels: Some(labels),
                        ..Default::default()
                    })
                    .await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn check_image(&self, image: &str) -> Result<(), FleetError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(FleetError::ImageMissing {
                image: image.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts workers until `n` run. Everything is checked before anything is created, and a
    /// failure part-way removes what this call created.
    pub async fn up(&self, spec: &FleetSpec, n: usize) -> Result<Vec<String>, FleetError> {
        if n > 256 {
            return Err(FleetError::BadCount { value: n });
        }
        self.check_image(&spec.image).await?;
        self.reap().await?;
        let running = self.ours(false).await?;
        let mut used: Vec<usize> = running
            .iter()
            .map(|c| index_of(c.labels.as_ref()))
            .collect();
        let mut plan = Vec::new();
        let mut i = 1;
        while running.len() + plan.len() < n {
            if !used.contains(&i) {
                let name = format!("{NAME_PREFIX}{i}");
                if self.docker.inspect_container(&name, None).await.is_ok() {
                    return Err(FleetError::NameConflict { name });
                }
                plan.push((i, name));
                used.push(i);
            }
            i += 1;
        }
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_network().await?;
        let mut spec = spec.clone();
        let mut written = None;
        if !spec.secrets.is_empty() {
            let user = self.image_user(&spec.image).await?;
            let w = secrets::write(&secrets::base_dir(), &spec.secrets, user)?;
            spec.mounts.extend(
                w.mounts
                    .iter()
                    .map(|(s, t)| (s.display().to_string(), t.clone())),
            );
            written = Some(w.dir);
        }
        let mut created = Vec::new();
        for (index, name) in plan {
            match self.create_one(&spec, index, &name).await {
                Ok(()) => created.push(name),
                Err(e) => {
                    for c in &created {
                        let _ = self.remove(c).await;
                    }
                    let _ = self.remove(&name).await;
                    if let Some(dir) = written {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    return Err(e);
                }
            }
        }
        Ok(created)
    }

    /// The image's user as numbers, for the owner of the secret files (`None`: a name).
    async fn image_user(&self, image: &str) -> Result<Option<(u32, Option<u32>)>, FleetError> {
        let i = self.docker.inspect_image(image).await?;
        let user = i.config.and_then(|c| c.user).unwrap_or_default();
        Ok(secrets::numeric_user(&user))
    }

    async fn create_one(
        &self,
        spec: &FleetSpec,
        index: usize,
        name: &str,
    ) -> Result<(), FleetError> {
        let l = spec.limits;
        let mut labels = HashMap::new();
        labels.insert(LABEL_FLEET.to_string(), "worker".to_string());
        labels.insert(LABEL_INDEX.to_string(), index.to_string());
        labels.insert(LABEL_MEMORY.to_string(), l.memory_bytes.to_string());
        labels.insert(LABEL_CPUS.to_string(), l.nano_cpus.to_string());
        labels.insert(LABEL_PIDS.to_string(), l.pids.to_string());
        let mut env = spec.env.clone();
        env.push(format!("TARS_WORKER_NAME={name}"));
        let mut tmpfs = HashMap::new();
        tmpfs.insert("/tmp".to_string(), "size=16m".to_string());
        let mounts: Vec<Mount> = spec
            .mounts
            .iter()
            .map(|(source, target)| Mount {
                typ: Some(MountType::BIND),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(true),
                ..Default::default()
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(env),
            labels: Some(labels),
            stop_timeout: Some(spec.stop_timeout),
            host_config: Some(HostConfig {
                memory: Some(l.memory_bytes),
                memory_swap: Some(l.memory_bytes),
                nano_cpus: Some(l.nano_cpus),
                pids_limit: Some(l.pids),
                readonly_rootfs: Some(true),
                tmpfs: Some(tmpfs),
                mounts: (!mounts.is_empty()).then_some(mounts),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                network_mode: Some(NETWORK.into()),
                extra_hosts: Some(vec!["host.docker.internal:host-gateway".into()]),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self.docker.create_container(Some(opts), body).await?;
        self.docker.start_container(&created.id, None).await?;
        Ok(())
    }

    /// Grows or shrinks the fleet to `n`, copying the image, limits and environment of a
    /// running worker. Shrinking stops the highest-numbered workers gracefully (SIGTERM, then
    /// their stop timeout), so their in-flight tasks are handed back.
    pub async fn scale(&self, n: usize) -> Result<(Vec<String>, Vec<String>), FleetError> {
        if n > 256 {
            return Err(FleetError::BadCount { value: n });
        }
        self.reap().await?;
        let running = self.ours(false).await?;
        if running.len() < n {
            let template = running.first().ok_or(FleetError::NoFleet)?;
            let spec = self
                .spec_of(template.id.as_deref().unwrap_or_default())
                .await?;
            let added = self.up(&spec, n).await?;
            return Ok((added, Vec::new()));
        }
        let mut removed = Vec::new();
        let mut sources = Vec::new();
        for c in running.iter().rev().take(running.len() - n) {
            if let Some(id) = &c.id {
                sources.extend(self.mount_sources(id).await);
                self.stop_and_remove(id).await?;
                removed.push(name_of(c));
            }
        }
        self.release_secrets(sources).await?;
        Ok((Vec::new(), removed))
    }

    /// The sources of a container's bind mounts (none if it is gone).
    async fn mount_sources(&self, id: &str) -> Vec<String> {
        match self.docker.inspect_container(id, None).await {
            Ok(i) => bind_mounts(&i.host_config.unwrap_or_default())
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Deletes the secret directories of removed workers that no remaining worker mounts.
    async fn release_secrets(&self, sources: Vec<String>) -> Result<(), FleetError> {
        let mut in_use = Vec::new();
        for c in self.ours(true).await? {
            if let Some(id) = &c.id {
                in_use.extend(self.mount_sources(id).await);
            }
        }
        let base = secrets::base_dir();
        for s in sources.iter().filter(|s| !in_use.contains(s)) {
            secrets::remove_for(std::path::Path::new(s), &base);
        }
        Ok(())
    }

    async fn spec_of(&self, id: &str) -> Result<FleetSpec, FleetError> {
        let c = self.docker.inspect_container(id, None).await?;
        let config = c.config.unwrap_or_default();
        let hc = c.host_config.unwrap_or_default();
        let env = config
            .env
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.starts_with("TARS_") && !e.starts_with("TARS_WORKER_NAME="))
            .collect();
        let mounts = bind_mounts(&hc);
        Ok(FleetSpec {
            image: config.image.unwrap_or_else(|| DEFAULT_IMAGE.into()),
            limits: Limits {
                memory_bytes: hc.memory.unwrap_or(0),
                nano_cpus: hc.nano_cpus.unwrap_or(0),
                pids: hc.pids_limit.unwrap_or(0),
            },
            env,
            secrets: Vec::new(),
            mounts,
            stop_timeout: config.stop_timeout.unwrap_or(40),
        })
    }

    async fn stop_and_remove(&self, id: &str) -> Result<(), FleetError> {
        let t = self
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|c| c.config.and_then(|c| c.stop_timeout))
            .unwrap_or(40);
        let opts = StopContainerOptionsBuilder::new().t(t as i32).build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
        self.remove(id).await
    }

    /// Stops and removes every worker of the fleet (gracefully), then the secret files they
    /// had mounted; returns their names.
    pub async fn down(&self) -> Result<Vec<String>, FleetError> {
        let mut names = Vec::new();
        let mut sources = Vec::new();
        for c in self.ours(true).await? {
            if let Some(id) = &c.id {
                sources.extend(self.mount_sources(id).await);
                self.stop_and_remove(id).await?;
                names.push(name_of(&c));
            }
        }
        self.release_secrets(sources).await?;
        Ok(names)
    }

    /// Every worker with its limits and memory in use; `heartbeats` (from Redis) adds queue
    /// activity, matched by container hostname.
    pub async fn status(
        &self,
        heartbeats: &[HashMap<String, String>],
    ) -> Result<Vec<WorkerStatus>, FleetError> {
        let mut out = Vec::new();
        for c in self.ours(true).await? {
            let id = c.id.clone().unwrap_or_default();
            let inspect = self.docker.inspect_container(&id, None).await?;
            let hc = inspect.host_config.clone().unwrap_or_default();
            let state = inspect.state.clone().unwrap_or_default();
            let running = state.running.unwrap_or(false);
            let memory_usage = if running {
                let opts = StatsOptionsBuilder::new()
                    .stream(false)
                    .one_shot(true)
                    .build();
                let mut s = self.docker.stats(&id, Some(opts));
                match s.next().await {
                    Some(Ok(st)) => st.memory_stats.and_then(|m| m.usage),
                    _ => None,
                }
            } else {
                None
            };
            let hostname = inspect
                .config
                .and_then(|c| c.hostname)
                .unwrap_or_else(|| id.chars().take(12).collect());
            let hb = heartbeats
                .iter()
                .find(|h| h.get("host").is_some_and(|x| *x == hostname));
            out.push(WorkerStatus {
                name: name_of(&c),
                id: id.chars().take(12).collect(),
                state: state
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                health: state.health.and_then(|h| h.status).map(|s| s.to_string()),
                memory_limit: hc.memory,
                nano_cpus: hc.nano_cpus,
                pids_limit: hc.pids_limit,
                memory_usage,
                tasks_done: hb.and_then(|h| h.get("done")).and_then(|d| d.parse().ok()),
                current: hb
                    .and_then(|h| h.get("current"))
                    .filter(|c| !c.is_empty())
                    .cloned(),
            });
        }
        Ok(out)
    }
}

fn index_of(labels: Option<&HashMap<String, String>>) -> usize {
    labels
        .and_then(|l| l.get(LABEL_INDEX))
        .and_then(|i| i.parse().ok())
        .unwrap_or(usize::MAX)
}

fn name_of(c: &bollard::models::ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

/// The read-only bind mounts of a container: `(source, target)`.
fn bind_mounts(hc: &HostConfig) -> Vec<(String, String)> {
    hc.mounts
        .iter()
        .flatten()
        .filter(|m| m.typ == Some(MountType::BIND))
        .filter_map(|m| Some((m.source.clone()?, m.target.clone()?)))
        .collect()
}
