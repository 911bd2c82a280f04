//! Role `demo`: a simulated Xen host with a few domains, advertised on loopback only.

use crate::cli::{DemoArgs, HypervisorArgs};
use crate::consts::SSDP_DEFAULT_MAX_AGE;
use crate::error::{Error, Result};
use std::fs;
use std::path::Path;

/// The demo's domains: (file name, uuid, name, state, memory KiB, vCPUs).
const DEMO_DOMAINS: [(&str, &str, &str, &str, u64, u32); 3] = [
    (
        "web",
        "4d3b2c1a-0f9e-4d8c-b7a6-958473625140",
        "web",
        "running",
        1_048_576,
        2,
    ),
    (
        "db",
        "8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586",
        "db",
        "running",
        2_097_152,
        4,
    ),
    (
        "build",
        "c0ffee00-1234-4abc-8def-0123456789ab",
        "build",
        "shutoff",
        524_288,
        1,
    ),
];

/// Writes the demo's sim directory unless it already has domains.
fn seed_sim_dir(directory: &Path) -> Result<()> {
    fs::create_dir_all(directory)
        .map_err(|e| Error::io(format!("creating {}", directory.display()), e))?;
    let has_domains = fs::read_dir(directory)
        .map_err(|e| Error::io(format!("reading {}", directory.display()), e))?
        .filter_map(|entry| entry.ok())
        .any(|entry| entry.path().extension().is_some_and(|ext| ext == "domain"));
    if has_domains {
        return Ok(());
    }
    let host = "uuid=5e1f0c1e-7a2b-4c3d-8e9f-a0b1c2d3e4f5\nname=demo-host\ncpus=8\nmemory_mib=32768\nversion=4.17 (simulated)\n";
    let mut files = vec![(
        directory.join(crate::backend::sim::HOST_FILE),
        host.to_string(),
    )];
    for (file, uuid, name, state, memory_kib, vcpus) in DEMO_DOMAINS {
        let text = format!(
            "uuid={uuid}\nname={name}\nstate={state}\nmemory_kib={memory_kib}\nvcpus={vcpus}\n"
        );
        files.push((directory.join(format!("{file}.domain")), text));
    }
    for (path, text) in files {
        crate::files::write_atomic(&path, text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

/// Runs the demo until Ctrl-C.
pub fn run(args: DemoArgs) -> Result<()> {
    let directory = args.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("xenplug-demo-{}", std::process::id()))
    });
    let sim_dir = directory.join("sim");
    seed_sim_dir(&sim_dir)?;
    let port = if args.http_port != 0 {
        args.http_port
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| Error::io("choosing a port on 127.0.0.1", e))?
            .port()
    };
    println!(
        "xenplug demo: a simulated Xen host with {} domains, on loopback only",
        DEMO_DOMAINS.len()
    );
    println!("  domains:     {}/*.domain  (edit a state, add or remove a file: it is announced within 1 s)", sim_dir.display());
    println!("  description: http://127.0.0.1:{port}/description.xml");
    println!("  look:        curl http://127.0.0.1:{port}/description.xml");
    println!("               gssdp-discover -i lo --timeout 3   (Debian package gupnp-tools)");
    println!("  stop:        Ctrl-C (sends ssdp:byebye)");
    crate::role::hypervisor::run(HypervisorArgs {
        iface: vec!["lo".to_string()],
        backend: "sim".to_string(),
        sim_dir: Some(sim_dir),
        xl_config_dir: std::path::PathBuf::from(crate::consts::XL_DEFAULT_CONFIG_DIR),
        xl: std::path::PathBuf::from(crate::consts::XL_DEFAULT_PROGRAM),
        state_dir: directory.join("state"),
        http_port: port,
        max_age: SSDP_DEFAULT_MAX_AGE,
    })
}
