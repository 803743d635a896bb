import { builder } from "./builder.ts";

// Live subscriptions: see the realtime work; the event seam is src/server/events.ts.
void builder;
