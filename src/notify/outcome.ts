/** What one attempt of a notification came to, for every protocol. */
export type DeliveryOutcome =
  /** A positive acknowledgement, kept with the notification. */
  | { delivered: true; ack: string }
  /** No positive acknowledgement; `retry`: worth another attempt (else the notification fails, reason kept). */
  | { delivered: false; error: string; retry: boolean };
