// Package eventbus is edgecore's MQTT layer: device apps and mappers publish and subscribe on
// the edge's broker with the KubeEdge topics (spec §5), and edgecore's own modules (DeviceTwin,
// the upload Forwarder) use the same broker through [Bus].
//
// Modes (Config.Mode):
//   - internal: an embedded broker (mochi-mqtt, MQTT 3.1.1 and 5) listening on
//     Internal.Address, 127.0.0.1:1884 by default. edgecore itself talks to it through the
//     broker's inline client, not over TCP.
//   - external: edgecore is a client of another broker (mosquitto on tcp://127.0.0.1:1883 by
//     default), reconnecting with backoff and subscribing again after each reconnect.
//   - both: the two at once.
//
// The rule in mode both: edgecore's own publishes go to both brokers; messages that apps
// publish on one broker are NOT bridged to the other. Each handler therefore sees an app's
// message once, from the broker the app used, and nothing can loop between the brokers. A
// handler that matches one of edgecore's own publishes gets it once too: it is delivered by
// the internal broker, and the copy the external broker sends back is recognised (same
// topic and payload within echoWindow of the publish) and skipped.
//
// Payloads larger than Config.MaxPayloadBytes are refused by Publish and dropped on arrival,
// before any handler, counted in Stats and logged with their topic. On the internal broker
// the drop happens in the broker, so other MQTT clients do not get them either.
//
// Limitation of the external broker: MQTT 3.1.1 lets a broker send one copy of a message per
// matching subscription of a client (mosquitto 2 does). Handlers whose filters overlap
// (a/# and a/+) may then see such a message once per overlapping filter.
package eventbus
