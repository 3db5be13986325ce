// Package requestid names each request: the ID a proxy sent in X-Request-ID
// when it is safe to repeat, or a new one. The ID travels in the request's
// context to the access log, audit events, error pages and, through
// LogHandler, every log line written with that context.
package requestid
