//! Net layer: what every role's event loop shares: waiting for its next turn, signals
//! included, and running an HTTP server as a task.

use super::http::{self, Handler, ServerConfig};
use async_signal::Signals;
use smol::channel::{Receiver, Sender};
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

/// Tasks waiting for the next time something happens (a journal line appended, a feed moving
/// on): each [`Wakeups::listen`] gets a receiver that the next [`Wakeups::wake_all`] wakes, so
/// a waiting long poll answers at once rather than at its next look.
#[derive(Debug, Default)]
pub struct Wakeups {
    waiting: Vec<Sender<()>>,
}

impl Wakeups {
    /// A receiver woken at the next [`Wakeups::wake_all`] (dropping it unsubscribes).
    pub fn listen(&mut self) -> Receiver<()> {
        let (sender, receiver) = smol::channel::bounded(1);
        // Waits that ended without being woken (a long poll's deadline) leave closed senders.
        self.waiting.retain(|waiting| !waiting.is_closed());
        self.waiting.push(sender);
        receiver
    }

    /// Wakes every receiver handed out since the last call.
    pub fn wake_all(&mut self) {
        for waiting in self.waiting.drain(..) {
            let _ = waiting.try_send(());
        }
    }
}

/// Waits until `woken` says something happened or `deadline` passes.
pub async fn woken_or(woken: &Receiver<()>, deadline: Instant) {
    smol::future::or(
        async {
            let _ = woken.recv().await;
        },
        async {
            Timer::at(deadline).await;
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeups_wake_every_listener_once() {
        let mut wakeups = Wakeups::default();
        let first = wakeups.listen();
        let second = wakeups.listen();
        drop(wakeups.listen());
        wakeups.wake_all();
        assert!(first.try_recv().is_ok());
        assert!(second.try_recv().is_ok());
        wakeups.wake_all();
        assert!(first.try_recv().is_err(), "woken once");
        let third = wakeups.listen();
        assert_eq!(wakeups.waiting.len(), 1, "closed and woken ones are gone");
        wakeups.wake_all();
        assert!(third.try_recv().is_ok());
    }
}
