//! Net layer: runs one advertised root device.
//!
//! Owns the SSDP sockets, the HTTP listeners, GENA deliveries, the model's snapshots
//! and the signals, on one single-threaded smol executor. Protocol decisions are the engines'
//! ([`crate::engine`]); what the device is and what its actions do is the [`App`]'s.

use super::event_loop::on_thread;
use super::http::{Answer, Handler, Request, Response};
use super::http_client;
use super::iface::LocalInterface;
use super::ssdp::SsdpSocket;
use crate::app::App;
use crate::consts::CONTENT_TYPE_XML;
use crate::engine::access::{authorize_control, ControlRules, SignatureCheck};
use crate::engine::call;
use crate::engine::gena::{GenaRefusal, Notice, Subscriptions};
use crate::engine::nonces::Nonces;
use crate::engine::notices::Noticed;
use crate::engine::publication::{content_hash, route, Published, Route};
use crate::engine::ssdp::{self as ssdp_engine, Engine as SsdpEngine};
use crate::error::{Error, Result};
use crate::model::{Device, EventedValues};
use crate::state::{random_seed, StateDir, StateWrite};
use crate::wire::signature::{self, ControlKey, SignedParts, SIGNATURE_HEADER};
use crate::wire::soap::{self, UpnpError};
use log::Level;
use smol::channel::{Receiver, Sender};
use smol::future;
use smol::{Async, LocalExecutor, Timer};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after the SUBSCRIBE response is written the initial event waits: GUPnP drops a
/// NOTIFY that arrives before it has processed the response and stored the SID; measured,
/// about one subscription in three lost it when the event followed at once.
const GENA_INITIAL_EVENT_DELAY: Duration = Duration::from_millis(200);

/// Refused control callers remembered as already logged; the oldest is forgotten first.
const REFUSED_CALLERS_REMEMBERED: usize = 64;

/// Shortest time between two snapshots of the app.
const SNAPSHOT_GAP: Duration = Duration::from_millis(50);

/// Longest the loop sleeps when nothing is scheduled (a wake-up arrives sooner anyway).
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// How to run the device.
pub struct Options {
    /// Who may make which control calls.
    pub control: ControlRules,
    /// The control key signatures are checked with, if the device has one.
    pub key: Option<ControlKey>,
    /// Interfaces to advertise on (at least one).
    pub interfaces: Vec<LocalInterface>,
    /// Fixed HTTP port, or 0 for an ephemeral one per interface.
    pub http_port: u16,
    /// SSDP max-age.
    pub max_age: u32,
    /// State directory (BOOTID, CONFIGID).
    pub state: StateDir,
}

/// Everything the tasks share.
struct Core {
    published: Published,
    ssdp: SsdpEngine,
    gena: Subscriptions,
    state: StateDir,
    sockets: Vec<Rc<SsdpSocket>>,
    /// Last snapshot error, logged once until it changes.
    last_error: Option<String>,
    /// SERVER / USER-AGENT value.
    server: String,
    /// Who may make which control calls.
    control: ControlRules,
    /// The control key, if any.
    key: Option<ControlKey>,
    /// Nonces of the valid signatures seen within their window.
    nonces: Nonces,
    /// Callers already logged as refused control (logged once each, then at debug level).
    refused_callers: Noticed<()>,
}

type Shared = Rc<RefCell<Core>>;

impl Core {
    /// What the signature of a control request shows, when the device holds a key: checked
    /// against the request as sent, then its nonce against those seen (a replay is refused).
    fn check_signature(&mut self, request: &Request) -> SignatureCheck {
        let Some(key) = &self.key else {
            return SignatureCheck::NoKey;
        };
        let target = match &request.query {
            Some(query) => format!("{}?{query}", request.path),
            None => request.path.clone(),
        };
        let parts = SignedParts {
            method: &request.method,
            target: &target,
            host: request.header("HOST").unwrap_or_default(),
            soap_action: request.header("SOAPACTION").unwrap_or_default(),
            body: &request.body,
        };
        let now = super::unix_now();
        let checked = signature::verify(key, &parts, request.header(SIGNATURE_HEADER), now)
            .and_then(|signed| self.nonces.check(now, &signed).map(|()| signed.identity));
        match checked {
            Ok(identity) => SignatureCheck::Valid(identity),
            Err(reason) => SignatureCheck::Invalid(reason),
        }
    }

    /// Sends every SSDP message due now (non-blocking; a full socket buffer drops and logs).
    fn dispatch_ssdp(&mut self, now: Instant) {
        let sockets = &self.sockets;
        self.ssdp
            .dispatch(now, super::unix_now(), |out: ssdp_engine::Outgoing<'_>| {
                let Some(socket) = sockets.iter().find(|s| s.interface.index == out.interface)
                else {
                    return;
                };
                if let Err(error) = socket.try_send(out.destination, out.bytes) {
                    log::debug!("ssdp: sending to {} failed: {error}", out.destination);
                }
            });
    }

    /// Applies a new snapshot: CONFIGID, SSDP diff, GENA events. A new CONFIGID is announced
    /// before it is stored: what to write comes back, for the caller to write off the loop.
    fn apply(&mut self, now: Instant, root: Device, evented: EventedValues) -> Option<StateWrite> {
        let state = &mut self.state;
        let mut write = None;
        let change = self.published.update(root, evented, |hash| {
            let (config_id, pending) = state.config_id_unsaved(hash);
            write = pending;
            config_id
        });
        if change.description_changed {
            log::info!("description changed: CONFIGID {}", self.published.config_id);
            self.ssdp.set_devices(
                now,
                self.published.root.advertisements(),
                self.published.config_id,
            );
        }
        for key in change.removed_services {
            self.gena.remove_service(&key);
        }
        for (key, variables) in change.events {
            self.gena.notify(&key, variables);
        }
        write
    }

    /// When the loop must wake next.
    fn next_deadline(&self) -> Instant {
        [self.ssdp.poll_at(), self.gena.poll_at()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + IDLE_WAKE)
    }
}

/// Runs the device until SIGTERM or SIGINT, then says byebye for everything. SIGHUP takes a
/// new snapshot at once.
pub fn run(app: Rc<dyn App>, options: Options) -> Result<()> {
    let executor = Rc::new(LocalExecutor::new());
    super::event_loop::run_main(&executor, run_on(executor.clone(), app, options))
}

async fn run_on(
    executor: Rc<LocalExecutor<'static>>,
    app: Rc<dyn App>,
    options: Options,
) -> Result<()> {
    // Signals first, so a SIGTERM during start-up still ends with byebye, and a SIGHUP does
    // not end the process.
    let mut signals = crate::net::event_loop::stop_signals()
        .map_err(|e| Error::io("installing signal handlers", e))?;
    let reloads = crate::net::event_loop::reload_signals()
        .map_err(|e| Error::io("installing signal handlers", e))?;
    let Options {
        control,
        key,
        interfaces,
        http_port,
        max_age,
        mut state,
    } = options;
    let boot_id = state.next_boot_id()?;
    let (root, evented) = app.snapshot().await.map_err(Error::Backend)?;
    let config_id = state.config_id_for(content_hash(&root))?;

    let server = crate::state::server_string();
    let mut engine_interfaces = Vec::new();
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    for interface in &interfaces {
        let address = SocketAddr::from((interface.address, http_port));
        let listener = super::iface::listen_tcp(address, Some(&interface.name))
            .map_err(|e| Error::io(format!("HTTP on {}:{http_port}", interface.address), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("HTTP local address", e))?
            .port();
        let listener = Async::new(listener).map_err(|e| Error::io("HTTP listener", e))?;
        engine_interfaces.push(ssdp_engine::AdvertisingInterface {
            index: interface.index,
            address: interface.address,
            subnet: interface.subnet,
            http_port: port,
        });
        listeners.push((interface.clone(), listener, port));
        sockets.push(Rc::new(SsdpSocket::open(interface)?));
    }

    let seed = random_seed()?;
    let config = ssdp_engine::Config {
        max_age,
        boot_id,
        server: server.clone(),
    };
    let mut ssdp = SsdpEngine::new(config, engine_interfaces, seed);
    let now = Instant::now();
    ssdp.set_devices(now, root.advertisements(), config_id);
    let core: Shared = Rc::new(RefCell::new(Core {
        published: Published::new(root, config_id, evented),
        ssdp,
        gena: Subscriptions::new(random_seed()?),
        state,
        sockets: sockets.clone(),
        last_error: None,
        server: server.clone(),
        control,
        key,
        nonces: Nonces::new(),
        refused_callers: Noticed::new(REFUSED_CALLERS_REMEMBERED),
    }));
    let (wake, woken) = smol::channel::bounded::<()>(1);
    let (refresh, refresh_asked) = smol::channel::bounded::<()>(1);
    executor
        .spawn(follow_changes(
            core.clone(),
            app.clone(),
            refresh_asked,
            wake.clone(),
        ))
        .detach();
    // SIGHUP: a new snapshot at once (the VM's services directory, the hypervisor's backend),
    // published like any other change; nothing else restarts and no byebye is sent.
    let asked = refresh.clone();
    crate::net::event_loop::spawn_reloads(&executor, reloads, move || {
        log::info!("SIGHUP: reading the device's sources again");
        let _ = asked.try_send(());
    });

    for socket in sockets {
        executor
            .spawn(receive_loop(core.clone(), socket, wake.clone()))
            .detach();
    }
    for (interface, listener, port) in listeners {
        let handler: Rc<dyn Handler> = Rc::new(DeviceHttp {
            core: core.clone(),
            app: app.clone(),
            interface: interface.clone(),
            wake: wake.clone(),
            refresh: refresh.clone(),
        });
        super::event_loop::spawn_http(
            &executor,
            listener,
            handler,
            server.clone(),
            format!("HTTP server on {}", interface.name),
        );
        log::info!(
            "advertising on {} ({}): description at http://{}:{port}{}",
            interface.name,
            interface.address,
            interface.address,
            crate::consts::DESC_PATH
        );
    }

    loop {
        let deadline = core.borrow().next_deadline();
        let stop = super::event_loop::next_turn(&mut signals, deadline, &woken).await;
        let now = Instant::now();
        if stop {
            log::info!("stopping: sending ssdp:byebye");
            let mut core = core.borrow_mut();
            core.ssdp.shutdown(now);
            core.dispatch_ssdp(now);
            return Ok(());
        }
        tick(&executor, &core, &wake, now);
    }
}

/// One turn of the loop: SSDP sends, GENA expiry and deliveries.
fn tick(executor: &Rc<LocalExecutor<'static>>, shared: &Shared, wake: &Sender<()>, now: Instant) {
    let mut core = shared.borrow_mut();
    core.dispatch_ssdp(now);
    for delivery in core.gena.take_due(now) {
        executor
            .spawn(deliver(shared.clone(), wake.clone(), delivery))
            .detach();
    }
}

/// Takes a new snapshot of the app each time it may have changed, by its own word
/// ([`App::changed`]) or because an action was just performed here (`refresh`), and publishes
/// it. Snapshots are at least [`SNAPSHOT_GAP`] apart, so a burst of changes is read once.
async fn follow_changes(core: Shared, app: Rc<dyn App>, refresh: Receiver<()>, wake: Sender<()>) {
    let mut change = app.changed();
    let mut last = Instant::now();
    loop {
        // An action's refresh leaves the app's wait running: waits are not stacked up.
        let changed = future::or(
            async {
                (&mut change).await;
                true
            },
            async {
                let _ = refresh.recv().await;
                false
            },
        )
        .await;
        if changed {
            change = app.changed();
        }
        let ready = last + SNAPSHOT_GAP;
        if Instant::now() < ready {
            Timer::at(ready).await;
        }
        last = Instant::now();
        let result = app.snapshot().await;
        let write = {
            let mut core = core.borrow_mut();
            match result {
                Ok((root, evented)) => {
                    core.last_error = None;
                    core.apply(Instant::now(), root, evented)
                }
                Err(error) => {
                    if core.last_error.as_deref() != Some(error.as_str()) {
                        log::warn!("backend: {error}; keeping the last known state");
                        core.last_error = Some(error);
                    }
                    None
                }
            }
        };
        // The loop announces the change; the new CONFIGID is stored meanwhile, in order
        // (one snapshot at a time).
        let _ = wake.try_send(());
        if let Some(write) = write {
            if let Some(Err(error)) = on_thread(move || write.write()).await {
                log::warn!("state: {error}");
            }
        }
    }
}

/// Receives datagrams on one interface's socket and hands them to the SSDP engine.
async fn receive_loop(core: Shared, socket: Rc<SsdpSocket>, wake: Sender<()>) {
    let interface = socket.interface.index;
    socket
        .each_datagram(|source, bytes| {
            core.borrow_mut()
                .ssdp
                .on_datagram(Instant::now(), interface, source, bytes);
            let _ = wake.try_send(());
        })
        .await
}

/// Delivers one GENA event, trying each callback URL in order until one takes it. A 412
/// from a callback means the subscriber does not know the SID: the subscription is dropped
/// at once (see [`Subscriptions::delivered`]).
async fn deliver(core: Shared, wake: Sender<()>, delivery: crate::engine::gena::Delivery) {
    use crate::engine::gena::Outcome;
    let server = core.borrow().server.clone();
    let limits = http_client::Limits::NOTIFY;
    let mut outcome = Outcome::Failed;
    let mut refused_by = None;
    for callback in &delivery.callbacks {
        let seq = delivery.seq.to_string();
        let fields = crate::wire::gena::notify_headers(delivery.sid.as_str(), &seq);
        let mut headers: heapless::Vec<(&str, &str), 6> = fields.into_iter().collect();
        let _ = headers.push(("USER-AGENT", server.as_str()));
        let address = SocketAddr::from(callback.address);
        let answer = http_client::request(
            address,
            "NOTIFY",
            &callback.path,
            &headers,
            &delivery.body,
            &limits,
        )
        .await;
        match answer.map(|response| (response.status, Outcome::of_answer(response.status))) {
            Ok((_, Some(ended))) => {
                outcome = ended;
                if ended == Outcome::UnknownSid {
                    refused_by = Some(format!("http://{}{}", callback.address, callback.path));
                }
                break;
            }
            Ok((status, None)) => log::debug!("gena: {address} answered NOTIFY with {status}"),
            Err(error) => log::debug!("gena: NOTIFY to {address} failed: {error}"),
        }
    }
    if outcome == Outcome::Failed {
        log::info!(
            "gena: event {} of {} could not be delivered",
            delivery.seq,
            delivery.sid
        );
    }
    let ended = core.borrow_mut().gena.delivered(&delivery.sid, outcome);
    if let (Some(service), Some(callback)) = (ended, refused_by) {
        log::info!(
            "gena: {callback} answered 412 to event {} of {}: it does not know that \
             subscription to {service}; dropped",
            delivery.seq,
            delivery.sid
        );
    }
    let _ = wake.try_send(());
}

/// The HTTP side of one interface: descriptions, control, eventing.
struct DeviceHttp {
    core: Shared,
    app: Rc<dyn App>,
    interface: LocalInterface,
    /// Wakes the loop.
    wake: Sender<()>,
    /// Asks for a snapshot now.
    refresh: Sender<()>,
}

fn status(code: u16) -> Response {
    Response {
        status: code,
        headers: Vec::new(),
        body: Vec::new(),
        after_write: None,
    }
}

fn fault(error: &UpnpError) -> Response {
    let mut body = Vec::new();
    soap::write_fault(error, &mut body);
    Response {
        status: 500,
        headers: vec![
            ("Content-Type", CONTENT_TYPE_XML.to_string()),
            ("EXT", String::new()),
        ],
        body,
        after_write: None,
    }
}

impl DeviceHttp {
    fn control(&self, key: &str, request: Request) -> Answer {
        let admitted = call::admit(request.header("CONTENT-TYPE"), request.header("SOAPACTION"));
        let soap_action = match admitted {
            Ok(soap_action) => soap_action,
            Err(refusal) => {
                log::debug!(
                    "{}: POST to control {} refused ({}): {refusal}",
                    request.peer,
                    soap::capped(key),
                    refusal.status()
                );
                return Answer::Now(status(refusal.status()));
            }
        };
        let core = self.core.borrow();
        let resolved = call::resolve(&core.published.root, key, Some(soap_action), &request.body);
        drop(core);
        let call = match resolved {
            None => return Answer::Now(status(404)),
            Some(Err(error)) => return Answer::Now(fault(&error)),
            Some(Ok(call)) => call,
        };
        let mut core = self.core.borrow_mut();
        let signature = core.check_signature(&request);
        let authorized =
            authorize_control(&core.control, request.peer.ip(), &signature, &call.action);
        if let Err(error) = authorized {
            let first = core.refused_callers.first(request.peer.ip(), ());
            let level = if first { Level::Warn } else { Level::Debug };
            log::log!(
                level,
                "{}: {} on {key} refused: {error}{}",
                request.peer,
                call.action.name,
                if first {
                    " (further refusals of this address at debug level)"
                } else {
                    ""
                }
            );
            return Answer::Now(fault(&error));
        }
        drop(core);
        let caller = match &signature {
            SignatureCheck::Valid(identity) => format!("{} ({identity})", request.peer),
            _ => request.peer.to_string(),
        };
        let service_type = call.service.spec.service_type.clone();
        let action_name = call.action.name.clone();
        let invoked = self.app.invoke(call);
        let refresh = self.refresh.clone();

        let key_text = key.to_string();
        Answer::Later(Box::pin(async move {
            let result = invoked.await;
            match &result {
                Ok(_) => log::info!("{caller}: {action_name} on {key_text}: done"),
                Err(error) => log::info!("{caller}: {action_name} on {key_text}: {error}"),
            }
            // An action may have changed the model: look at it now.
            let _ = refresh.try_send(());
            match result {
                Ok(outputs) => {
                    let pairs: Vec<(&str, &str)> = outputs
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let mut body = Vec::new();
                    soap::write_response(&service_type, &action_name, &pairs, &mut body);
                    Response {
                        status: 200,
                        headers: vec![
                            ("Content-Type", CONTENT_TYPE_XML.to_string()),
                            ("EXT", String::new()),
                        ],
                        body,
                        after_write: None,
                    }
                }
                Err(error) => fault(&error),
            }
        }))
    }

    fn subscribe(&self, key: &str, request: &Request) -> Response {
        use crate::wire::gena::{parse_subscribe, SubscribeRequest};
        let mut core = self.core.borrow_mut();
        let Some(evented) = core.published.evented.get(key).cloned() else {
            return status(404);
        };
        let parsed = parse_subscribe(
            request.header("NT"),
            request.header("CALLBACK"),
            request.header("SID"),
            request.header("TIMEOUT"),
        );
        let now = Instant::now();
        let subscriber = request.peer.ip();
        let result = match parsed {
            Err(error) => return status(error.status()),
            Ok(SubscribeRequest::New { callbacks, timeout }) => {
                let callbacks = callbacks.iter().map(Into::into).collect();
                core.gena
                    .subscribe(now, key, callbacks, timeout, subscriber)
                    .map(|subscribed| {
                        if let Some(replaced) = &subscribed.replaced {
                            let first = core.gena.first_notice(subscriber, Notice::Replaced);
                            let level = if first { Level::Info } else { Level::Debug };
                            log::log!(
                                level,
                                "gena: {} holds the most subscriptions to {key} one address \
                                 may; its oldest, {replaced}, is replaced",
                                request.peer
                            );
                        }
                        (subscribed.sid.into(), subscribed.granted, true)
                    })
            }
            Ok(SubscribeRequest::Renew { sid, timeout }) => core
                .gena
                .renew(now, key, sid, timeout)
                .map(|granted| (sid.to_string(), granted, false)),
        };
        match result {
            Err(refusal) => {
                let first = refusal == GenaRefusal::Unavailable
                    && core.gena.first_notice(subscriber, Notice::Refused);
                let level = if first { Level::Warn } else { Level::Debug };
                log::log!(
                    level,
                    "gena: {} SUBSCRIBE to {key} refused: {refusal}",
                    request.peer
                );
                status(refusal.status())
            }
            Ok((sid, granted, new)) => {
                let verb = if new { "subscribed" } else { "renewed" };
                log::debug!(
                    "gena: {} {verb} {sid} to {key} for {} s",
                    request.peer,
                    granted.as_secs()
                );
                let mut response = status(200);
                response.headers.push(("SID", sid.clone()));
                response
                    .headers
                    .push(("TIMEOUT", crate::wire::gena::timeout_value(granted)));
                if new {
                    let shared = self.core.clone();
                    let wake = self.wake.clone();
                    let variables = evented
                        .into_iter()
                        .map(|(n, v)| (n.to_string(), v))
                        .collect();
                    // UDA 1.1 section 4.1.2: the initial event follows the SUBSCRIBE response;
                    // GUPnP drops a NOTIFY that arrives before it.
                    response.after_write = Some(Box::new(move || {
                        let due = Instant::now() + GENA_INITIAL_EVENT_DELAY;
                        shared.borrow_mut().gena.send_initial(&sid, variables, due);
                        let _ = wake.try_send(());
                    }));
                }
                response
            }
        }
    }

    fn unsubscribe(&self, key: &str, request: &Request) -> Response {
        let parsed = crate::wire::gena::parse_unsubscribe(
            request.header("NT"),
            request.header("CALLBACK"),
            request.header("SID"),
        );
        match parsed {
            Err(error) => status(error.status()),
            Ok(sid) => match self.core.borrow_mut().gena.unsubscribe(key, sid) {
                Ok(()) => {
                    log::debug!("gena: {} unsubscribed {sid} from {key}", request.peer);
                    status(200)
                }
                Err(refusal) => {
                    log::debug!(
                        "gena: {} UNSUBSCRIBE {} from {}: {refusal}",
                        request.peer,
                        soap::capped(sid),
                        soap::capped(key)
                    );
                    status(refusal.status())
                }
            },
        }
    }
}

impl Handler for DeviceHttp {
    /// Only peers inside the interface's subnet (DESIGN: answer only on configured
    /// interfaces and from their subnets).
    fn admits(&self, peer: SocketAddr) -> bool {
        match peer.ip() {
            IpAddr::V4(v4) => self.interface.contains(v4),
            IpAddr::V6(_) => false,
        }
    }

    fn lookup(
        &self,
        head: &crate::wire::http::RequestHead<'_>,
    ) -> Option<(&'static str, Arc<[u8]>)> {
        self.core.borrow().published.lookup(head)
    }

    fn answer(&self, request: Request) -> Answer {
        let path = request.path.clone();
        match route(&request.method, &path) {
            Route::Control(key) => self.control(key, request),
            Route::Subscribe(key) => Answer::Now(self.subscribe(key, &request)),
            Route::Unsubscribe(key) => Answer::Now(self.unsubscribe(key, &request)),
            Route::MethodNotAllowed => Answer::Now(status(405)),
            Route::NotFound => Answer::Now(status(404)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::{Domain, HostInfo, RunState};
    use crate::control::{evented_values, hypervisor_device, HostView};
    use crate::engine::publication::Published;
    use crate::wire::http::emit_response_head;
    use crate::wire::http::RequestHead;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use uuid::Uuid;

    /// Counts allocations made by the current thread while counting is on.
    struct CountingAllocator;

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    fn count_one() {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
    }

    // SAFETY: forwards every call to the system allocator unchanged.
    unsafe impl GlobalAlloc for CountingAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count_one();
            System.alloc(layout)
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            System.dealloc(pointer, layout)
        }

        unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
            count_one();
            System.realloc(pointer, layout, size)
        }
    }

    #[global_allocator]
    static ALLOCATOR: CountingAllocator = CountingAllocator;

    fn allocations_during(work: impl FnOnce()) -> usize {
        ALLOCATIONS.with(|count| count.set(0));
        COUNTING.with(|on| on.set(true));
        work();
        COUNTING.with(|on| on.set(false));
        ALLOCATIONS.with(Cell::get)
    }

    fn published(domains: usize) -> Published {
        let view = HostView {
            uuid: Uuid::from_u128(1),
            info: HostInfo {
                uuid: None,
                name: "alpha".into(),
                hypervisor_version: "4.17".into(),
                cpus: 4,
                memory_mib: 4096,
            },
            backend: "sim",
            domains: (0..domains)
                .map(|index| Domain {
                    uuid: Uuid::from_u128(100 + index as u128),
                    name: format!("vm{index}"),
                    state: RunState::Running,
                    memory_kib: 1 << 20,
                    vcpus: 1,
                })
                .collect(),
        };
        Published::new(hypervisor_device(&view), 3, evented_values(&view))
    }

    /// Descriptions and SCPDs are served from kept buffers: parsing the request, finding the
    /// document (what `DeviceHttp::lookup` does) and writing the response head allocate
    /// nothing, however many requests.
    #[test]
    fn serving_descriptions_allocates_nothing() {
        let published = published(20);
        let requests: [&[u8]; 3] = [
            b"GET /description.xml HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: gupnp\r\n\r\n",
            b"GET /scpd/DomainControl.xml HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
            b"HEAD /scpd/Hypervisor.xml?x=1 HTTP/1.0\r\n\r\n",
        ];
        let mut served = 0usize;
        let mut head = [0u8; crate::consts::HTTP_RESPONSE_HEAD_BUFFER];
        let count = allocations_during(|| {
            for _ in 0..200 {
                for request in requests {
                    let parsed = RequestHead::parse(request).expect("valid request");
                    let (content_type, body) = published.lookup(&parsed).expect("kept document");
                    let date = crate::wire::http_date(1_795_478_400);
                    let date = core::str::from_utf8(&date).unwrap_or_default();
                    let headers = [("Content-Type", content_type)];
                    let length = emit_response_head(
                        &mut head,
                        200,
                        &headers,
                        "xenplug",
                        date,
                        None,
                        body.len(),
                    )
                    .expect("head fits");
                    served += length + body.len();
                }
            }
        });
        assert!(
            served > 600 * 1000,
            "documents were really served ({served} bytes)"
        );
        assert_eq!(count, 0, "allocations while serving 600 requests");
    }

    /// An M-SEARCH is answered without touching the heap: parsing the datagram, matching its
    /// target, queueing the replies against the budgets (what `receive_loop` does), then
    /// rendering each reply into the stack buffer and handing it to the socket (what
    /// `Core::dispatch_ssdp` does; the send itself is a `sendto` of those bytes). Counted
    /// once the queue has grown to its working size, for every kind of search target, from
    /// several sources, over 50 rounds.
    #[test]
    fn answering_searches_allocates_nothing() {
        use crate::engine::ssdp::{AdvertisingInterface, Config, Engine, Outgoing};
        use std::net::{Ipv4Addr, SocketAddrV4};
        use std::time::{Duration, Instant};

        let published = published(20);
        let interface = AdvertisingInterface {
            index: 2,
            address: Ipv4Addr::new(10, 0, 0, 1),
            subnet: crate::subnet::Subnet::parse("10.0.0.0/24").expect("subnet"),
            http_port: 49152,
        };
        let config = Config {
            max_age: 1800,
            boot_id: 1,
            server: "Linux/6.1 UPnP/1.1 xenplug/0.1.0".into(),
        };
        let mut engine = Engine::new(config, vec![interface], 7);
        let start = Instant::now();
        engine.set_devices(start, published.root.advertisements(), 3);
        let domain_udn = published
            .root
            .advertisements()
            .get(1)
            .map(|device| device.udn.clone())
            .expect("an embedded device");
        let searches: Vec<Vec<u8>> = [
            "ssdp:all",
            "upnp:rootdevice",
            crate::consts::URN_SERVICE_DOMAIN_CONTROL,
            "urn:xenplug-org:device:Domain:0",
            domain_udn.as_str(),
            "urn:schemas-upnp-org:device:MediaRenderer:1",
        ]
        .iter()
        .map(|st| {
            format!(
                "M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nMan: \"ssdp:discover\"\r\n\
                 ST: {st}\r\nMX: 1\r\nUser-Agent: Linux/6.8.0 UPnP/1.0 GUPnP/1.6.6\r\n\r\n"
            )
            .into_bytes()
        })
        .collect();
        let sources: Vec<SocketAddrV4> = (10..14)
            .map(|host| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, host), 50000))
            .collect();
        let mut sent = [0u8; crate::consts::SSDP_EMIT_BUFFER];
        let mut replies = 0usize;
        let mut round = |at: Instant, replies: &mut usize| {
            for source in &sources {
                for search in &searches {
                    engine.on_datagram(at, interface.index, *source, search);
                }
            }
            // Past every reply's random delay (MX 1) and pacing.
            engine.dispatch(
                at + Duration::from_secs(3),
                1_795_478_400,
                |out: Outgoing<'_>| {
                    let length = out.bytes.len().min(sent.len());
                    if let (Some(to), Some(from)) =
                        (sent.get_mut(..length), out.bytes.get(..length))
                    {
                        to.copy_from_slice(from);
                    }
                    *replies += 1;
                },
            );
        };
        // The announcements and a first round grow the queue to its working size.
        round(start + Duration::from_secs(10), &mut replies);
        let warm = replies;
        let count = allocations_during(|| {
            for turn in 1..=50u64 {
                round(start + Duration::from_secs(10 + 4 * turn), &mut replies);
            }
        });
        let answered = replies - warm;
        // 4 sources x (65 + 1 + 20 + 20 + 1 + 0) replies a round.
        assert!(
            answered >= 50 * 4 * 100,
            "searches were answered ({answered} replies)"
        );
        assert_eq!(
            count, 0,
            "allocations while answering {answered} search replies"
        );
    }

    /// The counter itself works: rendering a model does allocate.
    #[test]
    fn rendering_is_counted() {
        let count = allocations_during(|| {
            let _ = published(2);
        });
        assert!(count > 0);
    }
}
