//! Benchmark of the hot paths: parsing an SSDP search, answering ssdp:all, serving a
//! description from its kept buffer and writing its response head, and checking a control
//! request's signature. Prints
//! figures, asserts nothing about speed.
//!
//! Each figure is also given as a ratio to a baseline measured in the same run (copying the
//! same bytes), because this machine is shared and absolute times drift between runs.
//!
//!   cargo bench --bench hot_paths

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};
use xenplug::backend::{Domain, HostInfo, RunState};
use xenplug::control::{evented_values, hypervisor_device, HostView};
use xenplug::engine::publication::Published;
use xenplug::engine::ssdp::{AdvertisingInterface, Config, Engine};
use xenplug::subnet::Subnet;
use xenplug::wire::http::RequestHead;
use xenplug::wire::signature::{self, ControlKey, SignedParts};

static SEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 3\r\nST: ssdp:all\r\nUSER-AGENT: Linux/6.1 UPnP/1.1 GUPnP/1.6.3\r\n\r\n";
static GET: &[u8] =
    b"GET /description.xml HTTP/1.1\r\nHost: 10.0.0.1:49152\r\nUser-Agent: gupnp\r\n\r\n";

/// Time per call of `work`, over enough iterations to run about `budget`.
fn per_call(budget: Duration, mut work: impl FnMut()) -> Duration {
    let mut iterations = 1u64;
    loop {
        let started = Instant::now();
        for _ in 0..iterations {
            work();
        }
        let elapsed = started.elapsed();
        if elapsed >= budget || iterations >= 1 << 26 {
            return elapsed / iterations as u32;
        }
        iterations *= 2;
    }
}

fn report(name: &str, measured: Duration, baseline: Duration) {
    let ratio = measured.as_secs_f64() / baseline.as_secs_f64().max(1e-12);
    println!(
        "{name:<44} {:>9.0} ns/op  {ratio:>7.1} x baseline",
        measured.as_nanos() as f64
    );
}

fn view(domains: usize) -> HostView {
    HostView {
        uuid: uuid::Uuid::from_u128(1),
        info: HostInfo {
            uuid: None,
            name: "bench".into(),
            hypervisor_version: "4.17".into(),
            cpus: 8,
            memory_mib: 65536,
        },
        backend: "sim",
        domains: (0..domains)
            .map(|index| Domain {
                uuid: uuid::Uuid::from_u128(1000 + index as u128),
                name: format!("vm{index}"),
                state: RunState::Running,
                memory_kib: 1 << 20,
                vcpus: 2,
            })
            .collect(),
    }
}

fn main() {
    let budget = Duration::from_millis(300);
    let view = view(50);
    let root = hypervisor_device(&view);
    let published = Published::new(root.clone(), 1, evented_values(&view));
    let description = published.description.clone();

    let copy_search = per_call(budget, || {
        black_box(black_box(SEARCH).to_vec());
    });
    let parse_search = per_call(budget, || {
        black_box(xenplug::wire::ssdp::parse(black_box(SEARCH)).ok());
    });
    report("baseline: copy a search datagram", copy_search, copy_search);
    report("wire::ssdp::parse(M-SEARCH)", parse_search, copy_search);

    let copy_description = per_call(budget, || {
        black_box(black_box(&description[..]).to_vec());
    });
    let serve = per_call(budget, || {
        let head = RequestHead::parse(black_box(GET)).ok();
        black_box(head.and_then(|head| published.lookup(&head)));
    });
    report(
        &format!("baseline: copy the description ({} B)", description.len()),
        copy_description,
        copy_description,
    );
    report(
        "parse GET + find the kept description",
        serve,
        copy_description,
    );

    // The response head written before each description, against copying its bytes.
    let mut storage = [0u8; 1024];
    let emit_head = |storage: &mut [u8]| {
        xenplug::wire::http::emit_response_head(
            storage,
            200,
            &[("Content-Type", "text/xml; charset=\"utf-8\"")],
            "Linux/6.1 UPnP/1.1 xenplug/bench",
            "Sun, 06 Dec 2026 22:00:00 GMT",
            Some("close"),
            black_box(description.len()),
        )
    };
    let head_len = emit_head(&mut storage).unwrap_or_default();
    let head = storage[..head_len].to_vec();
    let copy_head = per_call(budget, || {
        storage[..head_len].copy_from_slice(black_box(&head));
        black_box(&storage);
    });
    let emit = per_call(budget, || {
        black_box(emit_head(black_box(&mut storage)).ok());
    });
    report(
        &format!("baseline: copy a response head ({head_len} B)"),
        copy_head,
        copy_head,
    );
    report("wire::http::emit_response_head", emit, copy_head);

    let interface = AdvertisingInterface {
        index: 1,
        address: Ipv4Addr::new(10, 0, 0, 1),
        subnet: Subnet::of_interface(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(255, 255, 255, 0)),
        http_port: 49152,
    };
    let config = Config {
        max_age: 1800,
        boot_id: 1,
        server: "Linux/6.1 UPnP/1.1 xenplug/bench".into(),
    };
    let mut engine = Engine::new(config, vec![interface], 7);
    let start = Instant::now();
    engine.set_devices(start, root.advertisements(), 1);
    engine.dispatch(start, 0, |_| {});
    let mut sent = 0usize;
    let mut now = start;
    let answer_all = per_call(budget, || {
        // A new source each time, so the per-source budget never refuses; answers are due
        // within MX seconds, so move the clock past them and send them all.
        now += Duration::from_secs(6);
        let source = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2 + (sent % 200) as u8), 50000);
        engine.on_datagram(now, 1, source, SEARCH);
        now += Duration::from_secs(6);
        engine.dispatch(now, 0, |out| sent += out.bytes.len());
    });
    let targets = root
        .advertisements()
        .iter()
        .map(|a| 2 + a.service_types.len() + usize::from(a.root))
        .sum::<usize>();
    report(
        &format!("answer ssdp:all ({targets} responses, 50 VMs)"),
        answer_all,
        copy_search,
    );
    println!("bytes of responses sent: {sent}");

    // A signed control request: what checking its signature costs beside parsing its body.
    let soap_action = "\"urn:xenplug-org:service:DomainControl:1#Pause\"";
    let body = br#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:Pause xmlns:u="urn:xenplug-org:service:DomainControl:1"/></s:Body></s:Envelope>"#;
    let parts = SignedParts {
        method: "POST",
        target: "/control/domain/acac0001-1111-4a6b-8c9d-0000000000a1",
        host: "10.0.0.1:49152",
        soap_action,
        body,
    };
    let key = ControlKey::from_bytes([7; 32]);
    let header = signature::sign(&key, &parts, 1_800_000_000, &[9; 16], "admin").unwrap();
    let parse_call = per_call(budget, || {
        black_box(xenplug::wire::soap::parse_call(black_box(body), Some(soap_action)).ok());
    });
    let verify = per_call(budget, || {
        black_box(signature::verify(&key, black_box(&parts), Some(&header), 1_800_000_000).ok());
    });
    report(
        "baseline: wire::soap::parse_call(Pause)",
        parse_call,
        parse_call,
    );
    report("wire::signature::verify(Pause)", verify, parse_call);
}
