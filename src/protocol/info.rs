//! The INFO document the server sends and the CONNECT document the client sends.
