//! `strata serve` settings: flags, then environment, then an optional TOML
//! file, then defaults. Credentials also come from the variable names that
//! MinIO and RustFS deployments already pass.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub const DEFAULT_SEGMENT_BYTES: u64 = 256 << 20;
pub const DEFAULT_DATA_FILE: &str = "data/strata.img";
/// The default data file is sparse: only what is written takes space.
pub const DEFAULT_DATA_BYTES: u64 = 64 << 30;
const WELL_KNOWN_PAIR: (&str, &str) = ("minioadmin", "minioadmin");

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(long, env = "STRATA_ADDRESS")]
    pub address: Option<SocketAddr>,
    /// Data device (raw block device) or file.
    #[arg(long, env = "STRATA_DATA")]
    pub data: Option<PathBuf>,
    /// Size of the data file when it has to be created.
    #[arg(long, env = "STRATA_SIZE_BYTES")]
    pub size_bytes: Option<u64>,
    /// Segment size used when formatting a new data file.
    #[arg(long, env = "STRATA_SEGMENT_SIZE_BYTES")]
    pub segment_size_bytes: Option<u64>,
    #[arg(long, env = "STRATA_REGION")]
    pub region: Option<String>,
    /// Seconds between background checkpoints.
    #[arg(long, env = "STRATA_CHECKPOINT_INTERVAL_S")]
    pub checkpoint_interval_s: Option<u64>,
    /// DRAM for hot decoded chunks in front of the device.
    #[arg(long, env = "STRATA_CACHE_BYTES")]
    pub cache_bytes: Option<usize>,
    /// Open connections at once; past it new ones are closed at once.
    #[arg(long, env = "STRATA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections from one client address (default: half the cap).
    #[arg(long, env = "STRATA_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Requests served at once; past it, 503 SlowDown.
    #[arg(long, env = "STRATA_MAX_REQUESTS")]
    pub max_requests: Option<usize>,
    /// Request body bytes in flight at once; past it, 503 SlowDown.
    #[arg(long, env = "STRATA_MAX_IN_FLIGHT_BYTES")]
    pub max_in_flight_bytes: Option<u64>,
    /// Past this many ready tasks waiting in the runtime's shared queue
    /// (the cores are behind), new requests are answered 503 SlowDown;
    /// 0: never.
    #[arg(long, env = "STRATA_MAX_QUEUED_TASKS")]
    pub max_queued_tasks: Option<usize>,
    /// A request head must arrive whole within this.
    #[arg(long, env = "STRATA_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// A keep-alive connection may wait this long for its next request.
    #[arg(long, env = "STRATA_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// A request body may send nothing for this long (then RequestTimeout).
    #[arg(long, env = "STRATA_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: Option<u64>,
    /// A response may wait this long for its client to read.
    #[arg(long, env = "STRATA_SEND_TIMEOUT_MS")]
    pub send_timeout_ms: Option<u64>,
    /// A TLS handshake must finish within this.
    #[arg(long, env = "STRATA_TLS_HANDSHAKE_TIMEOUT_MS")]
    pub tls_handshake_timeout_ms: Option<u64>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "STRATA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "STRATA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// zstd level for chunks (0 stores everything raw).
    #[arg(long, env = "STRATA_ZSTD_LEVEL")]
    pub zstd_level: Option<i32>,
    /// Store identical chunks once (true/false).
    #[arg(long, env = "STRATA_DEDUP")]
    pub dedup: Option<bool>,
    /// Background compaction's copy budget in bytes per second (0: unlimited).
    #[arg(long, env = "STRATA_COMPACTION_RATE_BYTES_PER_S")]
    pub compaction_rate_bytes_per_s: Option<u64>,
    /// How often background compaction checks whether a round is due.
    #[arg(long, env = "STRATA_COMPACTION_INTERVAL_MS")]
    pub compaction_interval_ms: Option<u64>,
    /// Start with background compaction paused (SIGUSR1 toggles it).
    #[arg(long, env = "STRATA_COMPACTION_PAUSED")]
    pub compaction_paused: Option<bool>,
    /// New buckets get AWS's 2023 defaults (ACLs off: BucketOwnerEnforced,
    /// and every public access block on) instead of MinIO's (ACLs on, no
    /// block).
    #[arg(long, env = "STRATA_AWS_BUCKET_DEFAULTS")]
    pub aws_bucket_defaults: Option<bool>,
    /// Seconds in a lifecycle day (86400; shorter only to test lifecycle rules).
    #[arg(long, env = "STRATA_LIFECYCLE_DAY_S")]
    pub lifecycle_day_s: Option<u64>,
    /// Milliseconds between lifecycle passes (default: a minute, or a
    /// quarter of a shortened day).
    #[arg(long, env = "STRATA_LIFECYCLE_INTERVAL_MS")]
    pub lifecycle_interval_ms: Option<u64>,
    /// Encryption master keys, one `name:base64-of-32-bytes` per line
    /// (also STRATA_KMS_KEYS, and MinIO's MINIO_KMS_SECRET_KEY). A name
    /// listed again is that key rotated: its data keys are wrapped again.
    #[arg(long, env = "STRATA_KMS_KEY_FILE")]
    pub kms_key_file: Option<PathBuf>,
    /// The key SSE-S3 uses (default: MINIO_KMS_SECRET_KEY's, or the first).
    #[arg(long, env = "STRATA_KMS_DEFAULT_KEY")]
    pub kms_default_key: Option<String>,
    /// Encrypt every object written without SSE headers with SSE-S3.
    #[arg(long, env = "STRATA_ENCRYPT_NEW_OBJECTS")]
    pub encrypt_new_objects: Option<bool>,
    /// Accept SSE-C keys over plain HTTP from non-loopback clients.
    #[arg(long, env = "STRATA_SSE_C_OVER_HTTP")]
    pub sse_c_over_http: Option<bool>,
    /// The web console's address (empty: no console; `:9001` is every
    /// interface). Also MINIO_CONSOLE_ADDRESS.
    #[arg(long, env = "STRATA_CONSOLE_ADDRESS")]
    pub console_address: Option<String>,
    /// How long a console session lasts.
    #[arg(long, env = "STRATA_CONSOLE_SESSION_S")]
    pub console_session_s: Option<u64>,
    /// The S3 endpoint the console's share links name (default: the host
    /// the browser used, on the S3 port).
    #[arg(long, env = "STRATA_CONSOLE_S3_ENDPOINT")]
    pub console_s3_endpoint: Option<String>,
    /// How often the console's dashboard samples the metrics.
    #[arg(long, env = "STRATA_CONSOLE_SAMPLE_INTERVAL_MS")]
    pub console_sample_interval_ms: Option<u64>,
    /// A TOML file with any of the settings above (snake_case keys).
    #[arg(long, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    address: Option<SocketAddr>,
    data: Option<PathBuf>,
    size_bytes: Option<u64>,
    segment_size_bytes: Option<u64>,
    region: Option<String>,
    checkpoint_interval_s: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    max_requests: Option<usize>,
    max_in_flight_bytes: Option<u64>,
    max_queued_tasks: Option<usize>,
    header_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    tls_handshake_timeout_ms: Option<u64>,
    cache_bytes: Option<usize>,
    zstd_level: Option<i32>,
    dedup: Option<bool>,
    compaction_rate_bytes_per_s: Option<u64>,
    compaction_interval_ms: Option<u64>,
    compaction_paused: Option<bool>,
    aws_bucket_defaults: Option<bool>,
    lifecycle_day_s: Option<u64>,
    lifecycle_interval_ms: Option<u64>,
    access_key: Option<String>,
    secret_key: Option<String>,
    kms_key_file: Option<PathBuf>,
    kms_default_key: Option<String>,
    encrypt_new_objects: Option<bool>,
    sse_c_over_http: Option<bool>,
    console_address: Option<String>,
    console_session_s: Option<u64>,
    console_s3_endpoint: Option<String>,
    console_sample_interval_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub address: SocketAddr,
    pub data: PathBuf,
    pub size_bytes: u64,
    pub segment_size_bytes: u64,
    pub region: String,
    pub checkpoint_interval_s: u64,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_requests: usize,
    pub max_in_flight_bytes: u64,
    pub max_queued_tasks: usize,
    pub header_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub send_timeout_ms: u64,
    pub tls_handshake_timeout_ms: u64,
    pub cache_bytes: usize,
    pub zstd_level: i32,
    pub dedup: bool,
    pub compaction_rate_bytes_per_s: u64,
    pub compaction_interval_ms: u64,
    pub compaction_paused: bool,
    pub aws_bucket_defaults: bool,
    pub lifecycle_day_s: u64,
    pub lifecycle_interval_ms: u64,
    pub access_key: String,
    pub secret_key: String,
    /// The root secret before a rotation: stored secrets sealed under it
    /// are sealed again under the current one at start.
    pub previous_secret_key: Option<String>,
    pub keyring: kms::Keyring,
    pub encrypt_new_objects: bool,
    pub sse_c_over_http: bool,
    pub console: Option<ConsoleConfig>,
}

#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub address: SocketAddr,
    /// Given by the operator (a failure to listen is fatal), not the default.
    pub explicit: bool,
    pub session_s: u64,
    pub s3_endpoint: Option<String>,
    pub sample_interval_ms: u64,
}

pub const DEFAULT_CONSOLE_ADDRESS: &str = "127.0.0.1:9001";

/// MinIO's forms: `host:port`, or `:port` for every interface.
fn console_address(text: &str) -> Result<SocketAddr, String> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse()
        .map_err(|_| format!("--console-address {text:?} is not host:port"))
}

/// The encryption master keys: MinIO's MINIO_KMS_SECRET_KEY (whose key is
/// then the default, as in MinIO), STRATA_KMS_KEYS, then the key file.
/// Never from the data device.
pub fn keyring_from_env(
    key_file: Option<&std::path::Path>,
    default: Option<&str>,
) -> Result<kms::Keyring, String> {
    let mut keyring = kms::Keyring::default();
    for var in ["MINIO_KMS_SECRET_KEY", "STRATA_KMS_KEYS"] {
        if let Ok(text) = std::env::var(var) {
            keyring
                .add_entries(&text)
                .map_err(|e| format!("{var}: {e}"))?;
        }
    }
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        keyring
            .add_entries(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(name) = default {
        keyring.set_default(name).map_err(|e| e.to_string())?;
    }
    Ok(keyring)
}

fn env_pair(user: &str, password: &str) -> Option<(String, String)> {
    match (std::env::var(user), std::env::var(password)) {
        (Ok(u), Ok(p)) if !u.is_empty() && !p.is_empty() => Some((u, p)),
        _ => None,
    }
}

/// The key pair from the environment, as `serve` and `admin` read it.
pub fn credentials_from_env() -> Option<(String, String)> {
    env_pair("STRATA_ACCESS_KEY", "STRATA_SECRET_KEY")
        .or_else(|| env_pair("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"))
        .or_else(|| env_pair("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"))
        .or_else(|| env_pair("RUSTFS_ACCESS_KEY", "RUSTFS_SECRET_KEY"))
}

impl ServeArgs {
    pub fn resolve(self) -> Result<ServeConfig, String> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let address = self
            .address
            .or(file.address)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)));
        let credentials = credentials_from_env().or(match (file.access_key, file.secret_key) {
            (Some(a), Some(s)) => Some((a, s)),
            _ => None,
        });
        let (access_key, secret_key) = match credentials {
            Some(pair) => pair,
            None => (WELL_KNOWN_PAIR.0.to_string(), WELL_KNOWN_PAIR.1.to_string()),
        };
        if (access_key.as_str(), secret_key.as_str()) == WELL_KNOWN_PAIR {
            if !address.ip().is_loopback() {
                return Err(format!(
                    "refusing to serve on {address} with the well-known credentials minioadmin/minioadmin; \
                     set STRATA_ACCESS_KEY and STRATA_SECRET_KEY (or MINIO_ROOT_USER/MINIO_ROOT_PASSWORD)"
                ));
            }
            tracing::warn!(
                "USING THE WELL-KNOWN CREDENTIALS minioadmin/minioadmin: anyone who can reach {address} can read and write everything. Set STRATA_ACCESS_KEY and STRATA_SECRET_KEY."
            );
        }
        let keyring = keyring_from_env(
            self.kms_key_file.or(file.kms_key_file).as_deref(),
            self.kms_default_key.or(file.kms_default_key).as_deref(),
        )?;
        let encrypt_new_objects = self
            .encrypt_new_objects
            .or(file.encrypt_new_objects)
            .unwrap_or(false);
        if encrypt_new_objects && keyring.is_empty() {
            return Err(
                "--encrypt-new-objects needs a master key: set --kms-key-file, STRATA_KMS_KEYS or MINIO_KMS_SECRET_KEY"
                    .into(),
            );
        }
        let max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(1024)
            .max(1);
        let lifecycle_day_s = self
            .lifecycle_day_s
            .or(file.lifecycle_day_s)
            .unwrap_or(86_400)
            .max(1);
        Ok(ServeConfig {
            address,
            lifecycle_day_s,
            lifecycle_interval_ms: self
                .lifecycle_interval_ms
                .or(file.lifecycle_interval_ms)
                .unwrap_or((lifecycle_day_s * 250).min(60_000)),
            data: self
                .data
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_FILE)),
            size_bytes: self
                .size_bytes
                .or(file.size_bytes)
                .unwrap_or(DEFAULT_DATA_BYTES),
            segment_size_bytes: self
                .segment_size_bytes
                .or(file.segment_size_bytes)
                .unwrap_or(DEFAULT_SEGMENT_BYTES),
            region: self
                .region
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".into()),
            checkpoint_interval_s: self
                .checkpoint_interval_s
                .or(file.checkpoint_interval_s)
                .unwrap_or(60),
            max_connections,
            // Half the cap: many Milvus nodes may reach an appliance
            // through one NAT address, and one address still cannot take
            // every slot.
            max_connections_per_address: self
                .max_connections_per_address
                .or(file.max_connections_per_address)
                .unwrap_or(max_connections.div_ceil(2))
                .max(1),
            max_requests: self
                .max_requests
                .or(file.max_requests)
                .unwrap_or(256)
                .max(1),
            max_in_flight_bytes: self
                .max_in_flight_bytes
                .or(file.max_in_flight_bytes)
                .unwrap_or(2 << 30),
            max_queued_tasks: self
                .max_queued_tasks
                .or(file.max_queued_tasks)
                .unwrap_or(16),
            header_timeout_ms: self
                .header_timeout_ms
                .or(file.header_timeout_ms)
                .unwrap_or(10_000),
            idle_timeout_ms: self
                .idle_timeout_ms
                .or(file.idle_timeout_ms)
                .unwrap_or(30_000),
            body_timeout_ms: self
                .body_timeout_ms
                .or(file.body_timeout_ms)
                .unwrap_or(30_000),
            send_timeout_ms: self
                .send_timeout_ms
                .or(file.send_timeout_ms)
                .unwrap_or(30_000),
            tls_handshake_timeout_ms: self
                .tls_handshake_timeout_ms
                .or(file.tls_handshake_timeout_ms)
                .unwrap_or(10_000),
            cache_bytes: self
                .cache_bytes
                .or(file.cache_bytes)
                .unwrap_or(lsm::StoreConfig::default().cache_bytes),
            zstd_level: self.zstd_level.or(file.zstd_level).unwrap_or(1),
            dedup: self.dedup.or(file.dedup).unwrap_or(true),
            compaction_rate_bytes_per_s: self
                .compaction_rate_bytes_per_s
                .or(file.compaction_rate_bytes_per_s)
                .unwrap_or(128 << 20),
            compaction_interval_ms: self
                .compaction_interval_ms
                .or(file.compaction_interval_ms)
                .unwrap_or(5000),
            compaction_paused: self
                .compaction_paused
                .or(file.compaction_paused)
                .unwrap_or(false),
            aws_bucket_defaults: self
                .aws_bucket_defaults
                .or(file.aws_bucket_defaults)
                .unwrap_or(false),
            tls: match (
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err("TLS needs both a certificate and a key".into()),
            },
            access_key,
            secret_key,
            previous_secret_key: std::env::var("STRATA_PREVIOUS_SECRET_KEY")
                .ok()
                .filter(|s| !s.is_empty()),
            keyring,
            encrypt_new_objects,
            sse_c_over_http: self
                .sse_c_over_http
                .or(file.sse_c_over_http)
                .unwrap_or(false),
            console: {
                let given = self
                    .console_address
                    .or(file.console_address)
                    .or_else(|| std::env::var("MINIO_CONSOLE_ADDRESS").ok());
                let explicit = given.is_some();
                let text = given.unwrap_or_else(|| DEFAULT_CONSOLE_ADDRESS.to_string());
                match text.trim() {
                    "" => None,
                    text => Some(ConsoleConfig {
                        address: console_address(text)?,
                        explicit,
                        session_s: self
                            .console_session_s
                            .or(file.console_session_s)
                            .unwrap_or(12 * 3600)
                            .max(1),
                        s3_endpoint: self.console_s3_endpoint.or(file.console_s3_endpoint),
                        sample_interval_ms: self
                            .console_sample_interval_ms
                            .or(file.console_sample_interval_ms)
                            .unwrap_or(10_000)
                            .max(100),
                    }),
                }
            },
        })
    }
}
