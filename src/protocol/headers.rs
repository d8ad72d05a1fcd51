//! NATS message headers (ADR-4): `NATS/1.0[ <code>[ <description>]]\r\n` then `Name: value\r\n`
//! lines and a blank line.
