//! Integration tests: they drive the real `resetctl` binary and real HTTP on 127.0.0.1.
//! One binary (ripgrep's layout) so the suite links once; one module per area.

mod csdl;
mod util;

mod audit;
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
mod reset;
mod runs;
mod sinks;
mod tabletop;
mod templates;
mod tenants;
mod tickets;
mod tidy;
mod verify;
mod verify_runtime;
