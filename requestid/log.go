package requestid

import (
	"context"
	"log/slog"
)

// LogAttr is the attribute that carries the ID on log lines.
const LogAttr = "request_id"

// LogHandler wraps h so that every record logged with a request's context
// (log.InfoContext(ctx, …)) carries the request's ID as request_id: the lines
// that brokers, connectors and the issuer write while serving a request are
// found by the ID of its access line and error page. A record that names an
// ID itself keeps its own.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" && !hasID(r) {
		r = r.Clone()
		r.AddAttrs(slog.String(LogAttr, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}

func hasID(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == LogAttr
		return !found
	})
	return found
}
