//! vodctl as a library: the typed client of the management API (`client`), shared by the `vodctl` binary and the
//! end-to-end tests.
pub mod client;
