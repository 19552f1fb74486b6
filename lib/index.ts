/**
 * Public face of msrp-relay: the wire codec, the error type and (as they land) the relay and client.
 */
export * from './errors.js';
export * from './constants.js';
export * from './msrp/message.js';
