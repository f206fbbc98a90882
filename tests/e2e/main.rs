//! End-to-end tests: the local stack on the AWS emulator (moto server), driven through its HTTP API and S3, with
//! media made by ffmpeg and checked against ffprobe.
mod assets;
mod delivery;
mod edge_inputs;
mod encoding;
mod indexing;
mod mezzanine;
mod protection;
mod readme;
mod runtime_emulator;
mod scale;
mod screens;
mod sidecar;
mod support;
