import type { Sql } from "../db/database.ts";
import type { GenerationStatus } from "../domain/model.ts";

/**
 * Batches the loads one request makes in the same tick into one query
 * (a minimal DataLoader), so a page of 50 ledger entries asks for its
 * generations' statuses once, not 50 times.
 */
export class BatchLoader<K, V> {
  private readonly cache = new Map<K, Promise<V>>();
  private pending: { key: K; resolve: (value: V) => void; reject: (error: unknown) => void }[] = [];

  constructor(
    private readonly loadMany: (keys: readonly K[]) => Promise<Map<K, V>>,
    private readonly missing: V,
  ) {}

  load(key: K): Promise<V> {
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const promise = new Promise<V>((resolve, reject) => {
      this.pending.push({ key, resolve, reject });
      if (this.pending.length === 1) queueMicrotask(() => void this.flush());
    });
    this.cache.set(key, promise);
    return promise;
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    try {
      const values = await this.loadMany([...new Set(batch.map((item) => item.key))]);
      for (const item of batch) item.resolve(values.get(item.key) ?? this.missing);
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }
}

/** The per-request loaders. */
export interface Loaders {
  readonly generationStatus: BatchLoader<string, GenerationStatus | null>;
}

/**
 * The per-request loaders, each made on first use: a subscription's context
 * lives as long as it does, and most never resolve a field that loads.
 */
class LazyLoaders implements Loaders {
  private status: BatchLoader<string, GenerationStatus | null> | null = null;

  constructor(private readonly sql: Sql) {}

  get generationStatus(): BatchLoader<string, GenerationStatus | null> {
    this.status ??= new BatchLoader(async (ids) => {
      const rows = await this.sql.query<{ id: string; status: GenerationStatus }>(
        "SELECT id, status FROM generation WHERE id = ANY($1::uuid[])",
        [ids],
      );
      return new Map(rows.map((row) => [row.id, row.status]));
    }, null);
    return this.status;
  }
}

export function createLoaders(sql: Sql): Loaders {
  return new LazyLoaders(sql);
}
