//! Integration tests: they drive the real `resetctl` binary and real HTTP on 127.0.0.1.
//! One binary (ripgrep's layout) so the suite links once; one module per area.

mod csdl;
mod util;

mod audit;
mod bench;
mod browser;
mod cli;
mod comms;
mod doctor;
mod emulator;
mod engine;
mod forward;
mod graph;
mod graph_emulator;
mod hostile;
mod messages;
mod notify;
mod output;
mod playbook;
mod readiness;
mod report_render;
mod reset;
mod resolve;
mod runs;
mod secrets;
mod serve;
mod sinks;
mod tabletop;
mod templates;
mod tenants;
mod throttle;
mod tickets;
mod tidy;
mod triggers;
mod verify;
mod verify_mfa;
mod verify_runtime;
