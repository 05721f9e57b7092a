//! Integration tests of the Graph client and throttle governor (filled by its issue).
