/**
 * The one life every long-running loop of the agent has. The composition root (agent.ts) makes
 * the controllers, starts them in order once the store and the informers exist, and stops them
 * in reverse order before it closes the store. A controller never opens or closes the store.
 */
export interface Controller {
  readonly name: string;
  /** Starts the loop; returns at once (work happens in the background). */
  start(): void;
  /** Resolves once a run that started after this call has finished (tests, the lab). */
  flush(): Promise<void>;
  /**
   * Stops the loop. `leaving`: the node is leaving the cluster, so the controller also removes
   * what it made (kernel state, its datastore objects); otherwise everything stays in force for
   * the next agent to adopt.
   */
  stop(leaving: boolean): Promise<void>;
}
