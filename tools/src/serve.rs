//! `strata serve`: listen at once (liveness true, readiness false), recover
//! the store, then serve S3; checkpoint and compact in the background
//! (SIGUSR1 pauses and resumes compaction); on SIGTERM or Ctrl-C stop
//! accepting, finish in-flight requests, checkpoint, exit 0.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;

use crate::config::{ServeArgs, ServeConfig};

pub fn run(args: ServeArgs) -> Result<(), String> {
    let config = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(config))
}

fn open_store(config: &ServeConfig) -> Result<(lsm::Store, recovery::RecoveryReport), String> {
    let fresh = !config.data.exists();
    let options = blockdev::OpenOptions {
        create_size_bytes: Some(config.size_bytes),
        engine: None,
    };
    let device = blockdev::open_device(&config.data, &options).map_err(|e| e.to_string())?;
    if fresh {
        tracing::info!(path = %config.data.display(), size_bytes = config.size_bytes, "creating and formatting the data file");
        lsm::format_device(device.as_ref(), config.segment_size_bytes)
            .map_err(|e| e.to_string())?;
    }
    let (store, report) = recovery::open(
        device,
        recovery::OpenOptions {
            store: lsm::StoreConfig {
                cache_bytes: config.cache_bytes,
                compression: lsm::Compression {
                    zstd_level: (config.zstd_level != 0).then_some(config.zstd_level),
                    ..Default::default()
                },
                dedup: config.dedup,
                ..Default::default()
            },
            ignore_checkpoint: false,
        },
    )
    .map_err(|e| format!("cannot open {}: {e}", config.data.display()))?;
    Ok((store, report))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn checkpoint_loop(store: lsm::Store, interval: Duration) {
    let mut last = store.applied_lsn();
    loop {
        tokio::time::sleep(interval).await;
        let now = store.applied_lsn();
        if now != last {
            match store.checkpoint().await {
                Ok(report) => last = report.applied_lsn,
                Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
            }
        }
    }
}

/// SIGUSR1 pauses background compaction, and resumes it.
async fn compaction_toggle(store: lsm::Store) {
    let Ok(mut signals) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
    else {
        return;
    };
    while signals.recv().await.is_some() {
        let paused = !store.compaction_paused();
        store.pause_compaction(paused);
        tracing::info!(paused, "background compaction toggled");
    }
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    let state = s3api::AppState::new();
    let app = s3api::router(
        state.clone(),
        config.access_key.clone(),
        config.secret_key.clone(),
        &s3api::HttpLimits::default(),
    );
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.address))?;
    tracing::info!(address = %config.address, data = %config.data.display(), region = %config.region, "listening");
    let server = match &config.tls {
        Some((cert, key)) => {
            let acceptor = crate::tls::acceptor(cert, key)?;
            let listener = crate::tls::TlsListener::start(listener, acceptor)
                .map_err(|e| format!("cannot start TLS: {e}"))?;
            let listener = crate::limit::Limited::new(listener, config.max_connections);
            tracing::info!("serving HTTPS");
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await
            })
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            let listener = crate::limit::Limited::new(listener, config.max_connections);
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown_signal())
                    .await
            })
        }
    };

    let opening = config.clone();
    let (store, report) = tokio::task::spawn_blocking(move || open_store(&opening))
        .await
        .map_err(|e| format!("recovery task failed: {e}"))??;
    state
        .metrics
        .recovery_ms
        .store((report.seconds * 1000.0) as u64, Ordering::Relaxed);
    // A device of the previous release moves to this format before it is
    // served (its data stays readable either way).
    store
        .upgrade_format()
        .await
        .map_err(|e| format!("cannot upgrade the device's format: {e}"))?;
    let _ = state.store.set(store.clone());
    tracing::info!(objects = report.objects, seconds = report.seconds, "ready");
    let checkpoints = tokio::spawn(checkpoint_loop(
        store.clone(),
        Duration::from_secs(config.checkpoint_interval_s.max(1)),
    ));
    store.pause_compaction(config.compaction_paused);
    let policy = lsm::CompactionPolicy {
        rate_bytes_per_s: (config.compaction_rate_bytes_per_s > 0)
            .then_some(config.compaction_rate_bytes_per_s),
        ..Default::default()
    };
    let compactor = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .compact_in_background(
                    policy,
                    lsm::CompactionTriggers {
                        check_every: Duration::from_millis(config.compaction_interval_ms.max(10)),
                        ..Default::default()
                    },
                )
                .await
        })
    };
    let toggle = tokio::spawn(compaction_toggle(store.clone()));
    let lifecycle = {
        let store = store.clone();
        let expirer = lsm::ExpirerConfig {
            day_ms: config.lifecycle_day_s * 1000,
            interval: Duration::from_millis(config.lifecycle_interval_ms.max(100)),
            ..Default::default()
        };
        tokio::spawn(async move { store.expire_in_background(expirer).await })
    };

    let served = server
        .await
        .map_err(|e| format!("server task failed: {e}"))?;
    checkpoints.abort();
    compactor.abort();
    toggle.abort();
    lifecycle.abort();
    served.map_err(|e| format!("server error: {e}"))?;
    match store.checkpoint().await {
        Ok(r) => tracing::info!(objects = r.objects, "final checkpoint written"),
        Err(e) => tracing::warn!(error = %e, "final checkpoint failed"),
    }
    store.shutdown();
    tracing::info!("stopped");
    Ok(())
}
