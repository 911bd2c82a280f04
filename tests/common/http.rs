//! HTTP through curl inside a namespace, SOAP calls, and a plain scan for XML element text.

use std::fs;
use std::time::Duration;

use super::netns::Netns;
use super::procs::unique;

/// One HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl HttpResponse {
    /// First header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_curl_i(raw: &str) -> Option<HttpResponse> {
    // `curl -i` prints every response head (e.g. a 100 Continue) before the final one.
    let mut rest = raw;
    loop {
        let (head, body) = rest.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if status == 100 {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Some(HttpResponse {
            status,
            headers,
            body: body.to_string(),
        });
    }
}

/// Request with curl inside `ns`; `extra` are further curl arguments. Panics if no response.
pub fn curl(ns: &Netns, url: &str, extra: &[&str]) -> HttpResponse {
    let mut args = vec!["-sS", "-i", "--max-time", "5", "--noproxy", "*"];
    args.extend_from_slice(extra);
    args.push(url);
    let output = ns.run("curl", &args, Duration::from_secs(15));
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    parse_curl_i(&raw).unwrap_or_else(|| {
        panic!(
            "curl {url}: no HTTP response ({}): {}\n{raw}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Whether any HTTP response comes back at all (connection refused / timeout -> false).
pub fn curl_reaches(ns: &Netns, url: &str) -> bool {
    let args = [
        "-sS",
        "-o",
        "/dev/null",
        "--max-time",
        "3",
        "--noproxy",
        "*",
        url,
    ];
    ns.run("curl", &args, Duration::from_secs(10))
        .status
        .success()
}

/// GET `url` from inside `ns`.
pub fn http_get(ns: &Netns, url: &str) -> HttpResponse {
    curl(ns, url, &[])
}

/// POST a SOAP action to `control_url`; `args` are (name, value) in order.
pub fn soap_call(
    ns: &Netns,
    control_url: &str,
    service_type: &str,
    action: &str,
    args: &[(&str, &str)],
) -> HttpResponse {
    let mut body = String::from(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>",
    );
    body.push_str(&format!("<u:{action} xmlns:u=\"{service_type}\">"));
    for (name, value) in args {
        body.push_str(&format!("<{name}>{value}</{name}>"));
    }
    body.push_str(&format!("</u:{action}></s:Body></s:Envelope>"));
    let file = ns.log_dir().join(format!("soap-{}.xml", unique()));
    fs::write(&file, body).expect("write SOAP body");
    let data = format!("@{}", file.display());
    let soapaction = format!("SOAPACTION: \"{service_type}#{action}\"");
    curl(
        ns,
        control_url,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: text/xml; charset=\"utf-8\"",
            "-H",
            &soapaction,
            "--data-binary",
            &data,
        ],
    )
}

/// Text of the first element whose name (after any prefix) is `local` in `xml`; a plain scan,
/// good enough for the small documents under test.
pub fn xml_text<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    xml_texts(xml, local).into_iter().next()
}

/// Texts of every element whose local name is `local`.
pub fn xml_texts<'a>(xml: &'a str, local: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        let name = tag.split_whitespace().next().unwrap_or("");
        let bare = name.rsplit(':').next().unwrap_or(name);
        if bare == local && !tag.starts_with('/') && !tag.ends_with('/') {
            let body = &rest[close + 1..];
            if let Some(end) = body.find("</") {
                out.push(body[..end].trim());
            }
        }
        rest = &rest[close + 1..];
    }
    out
}
