// bindings/node/index.d.ts — types for the feox loader (index.js).

/** The bundled extension's full path (…/feox.so), as loadExtension() takes it. */
export declare function getLoadablePath(): string;

/** Loads feox into a better-sqlite3 Database (calls db.loadExtension(getLoadablePath())). */
export declare function load(db: {
  loadExtension(file: string, entryPoint?: string): unknown;
}): void;
