//! Net layer: what every role's event loop shares: waiting for its next turn, signals
//! included, and running an HTTP server as a task.

use super::http::{self, Handler, ServerConfig};
use async_signal::Signals;
use smol::channel::Receiver;
use smol::stream::StreamExt;
use smol::{Async, LocalExecutor, Timer};
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Instant;

/// The signals that stop a role: SIGTERM and SIGINT. Install them first, so that a signal
/// during start-up is not lost.
pub fn stop_signals() -> std::io::Result<Signals> {
    use async_signal::Signal;
    Signals::new([Signal::Term, Signal::Int])
}

/// The signal that asks a long-running role to read its files again: SIGHUP. Installing it
/// replaces the default action, which would end the process without a byebye; install it
/// first too. What a role reads again is its own (see [`spawn_reloads`]).
pub fn reload_signals() -> std::io::Result<Signals> {
    Signals::new([async_signal::Signal::Hup])
}

/// Runs `reload` on `executor` once per SIGHUP caught by `signals` (several pending signals
/// may arrive as one). The role keeps running, sockets and presence included.
pub fn spawn_reloads(
    executor: &Rc<LocalExecutor<'static>>,
    mut signals: Signals,
    reload: impl Fn() + 'static,
) {
    executor
        .spawn(async move {
            while signals.next().await.is_some() {
                reload();
            }
        })
        .detach();
}

/// Waits until `deadline`, a wake-up on `woken`, or a stop signal; true when a signal asked
/// the role to stop.
pub async fn next_turn(signals: &mut Signals, deadline: Instant, woken: &Receiver<()>) -> bool {
    smol::future::or(
        async {
            signals.next().await;
            true
        },
        smol::future::or(
            async {
                Timer::at(deadline).await;
                false
            },
            async {
                let _ = woken.recv().await;
                false
            },
        ),
    )
    .await
}

/// Runs an HTTP server for `handler` on `listener` as a task of `executor`; `what` names it
/// in the log line written if it ever stops.
pub fn spawn_http(
    executor: &Rc<LocalExecutor<'static>>,
    listener: Async<TcpListener>,
    handler: Rc<dyn Handler>,
    server_header: String,
    what: String,
) {
    let serving = http::serve(
        listener,
        handler,
        ServerConfig::new(server_header),
        executor.clone(),
    );
    executor
        .spawn(async move {
            if let Err(error) = serving.await {
                log::error!("{what} stopped: {error}");
            }
        })
        .detach();
}
