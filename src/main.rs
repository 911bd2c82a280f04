//! The xenplug binary: picks a role and runs it (see `xenplug::role`).

fn main() {
    std::process::exit(xenplug::role::main(std::env::args().collect()));
}
