//! Squads, users and tokens as a service and an HTTP API.
