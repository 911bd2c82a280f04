//! Net layer: what every role's event loop shares: waiting for its next turn, signals
//! included, and running an HTTP server as a task.

use super::http::{self, Handler, ServerConfig};
use async_signal::Signals;
use smol::channel::{Receiver, Sender};
use smol::future::Future;
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

/// Runs a role's main future on `executor` until it ends, as a task of its own. A task is
/// polled only when something it waits on wakes it; the future given to `block_on` is polled
/// whenever any task is woken (each HTTP request served), and would try its signal pipe, its
/// sockets and its clock every time.
pub fn run_main<T: 'static>(
    executor: &Rc<LocalExecutor<'static>>,
    main: impl Future<Output = T> + 'static,
) -> T {
    smol::block_on(executor.run(executor.spawn(main)))
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

/// Runs blocking `work` (a backend call, a directory's watch, waiting for a child) on a
/// thread of its own, and waits for its result without blocking the loop; `None` only if the
/// work panicked, which a release build never survives (panics abort). The thread ends with
/// the work: unlike a pool (smol's `unblock` keeps its threads, each waking twice a second
/// forever), nothing stays behind to wake an idle role. Callers bound how many run at once.
/// Where no thread can be started (out of resources), the work runs on the caller's thread,
/// said once in the log.
pub async fn on_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (sender, receiver) = smol::channel::bounded(1);
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(work)));
    let taken = slot.clone();
    let started = std::thread::Builder::new()
        .name("xenplug-work".to_string())
        .spawn(move || {
            let work = taken.lock().ok().and_then(|mut slot| slot.take());
            if let Some(work) = work {
                let _ = sender.send_blocking(work());
            }
        });
    if let Err(error) = started {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| log::warn!("cannot start a thread ({error}): working on the loop"));
        let work = slot.lock().ok().and_then(|mut slot| slot.take());
        return work.map(|work| work());
    }
    receiver.recv().await.ok()
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
    fn work_on_a_thread_comes_back() {
        let here = std::thread::current().id();
        let there = smol::block_on(on_thread(move || std::thread::current().id() != here));
        assert_eq!(there, Some(true));
    }

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
