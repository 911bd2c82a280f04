//! The reference server of `tests/benches/peers.sh`: the least a server can do to answer a
//! GET. One thread, blocking calls, no parsing beyond the end of each request head, no limits,
//! and the same bytes for every request (the head ready-made, `Date` included). With one
//! connection, where each request waits for the previous answer, no server that sleeps between
//! requests answers sooner, so its rate there is what this machine and network allow.
//!
//!   reference_server ADDRESS:PORT FILE     (serves FILE's bytes as text/xml)
//!
//! Run without arguments (as `cargo bench` does), it says so and exits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, file] = args.as_slice() else {
        eprintln!("reference_server ADDRESS:PORT FILE: the reference of tests/benches/peers.sh");
        return;
    };
    let (body, listener) = match (std::fs::read(file), TcpListener::bind(address)) {
        (Ok(body), Ok(listener)) => (body, listener),
        (Err(error), _) => fail(&format!("{file}: {error}")),
        (_, Err(error)) => fail(&format!("{address}: {error}")),
    };
    let answer = |connection: &str| {
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: {}\r\n\
             Server: Linux UPnP/1.1 reference/1\r\nDate: Sun, 06 Dec 2026 00:00:00 GMT\r\n{connection}\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    };
    let kept = answer("");
    let closing = answer("Connection: close\r\n");
    for stream in listener.incoming().flatten() {
        serve(stream, &kept, &closing);
    }
}

fn fail(message: &str) -> ! {
    eprintln!("reference_server: {message}");
    std::process::exit(1);
}

/// Answers every request on `stream` until the client closes or asks to close.
fn serve(mut stream: TcpStream, kept: &[u8], closing: &[u8]) {
    let _ = stream.set_nodelay(true);
    let mut buffer = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(count) => filled += count,
        }
        while let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &buffer[..end];
            let closes = head
                .windows(17)
                .any(|w| w.eq_ignore_ascii_case(b"connection: close"));
            if stream
                .write_all(if closes { closing } else { kept })
                .is_err()
                || closes
            {
                return;
            }
            buffer.copy_within(end + 4..filled, 0);
            filled -= end + 4;
        }
        if filled == buffer.len() {
            return;
        }
    }
}
