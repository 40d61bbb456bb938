package devicetwin

import "github.com/skerry-io/skerry/edge/eventbus"

// The MQTT types are edge/eventbus's; the aliases keep this package's signatures short.
type (
	// Message is one MQTT message.
	Message = eventbus.Message
	// Handler receives the messages of one subscription.
	Handler = eventbus.Handler
	// Bus is the edge's MQTT broker connection.
	Bus = eventbus.Bus
)
