// Package web holds what every fedhub page and endpoint shares: security
// headers, cookie handling (the __Host- prefix on https), the error page and
// request limits.
package web
