/**
 * The endpoints of upstream/, as the rest of the gateway uses them: `Endpoint` (one replica and
 * its standing, in replica.ts) and `EndpointRegistry` (endpoints by origin, in registry.ts).
 */
export type { BreakerState } from './breaker.js';
export type { DispatcherFactory, EndpointPoolOptions } from './connection.js';
export type { CheckResult, HealthCheckClientFactory } from './health-check.js';
export type { Settlement } from './outcome.js';
export { type EndpointConnectors, EndpointRegistry } from './registry.js';
export { Endpoint, type EndpointEvents, type EndpointSettings, type EndpointState } from './replica.js';
