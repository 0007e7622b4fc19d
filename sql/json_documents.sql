-- json_documents.sql — JSON documents updated in place with RFC 6902 JSON Patch.
--   cd sql && sqlite3 -cmd '.load ../build/feox' :memory: < json_documents.sql
--
-- Key:   'doc:<collection>:<id>'     Value: a JSON document (TEXT)
-- feox_patch(table, key, patch) applies every operation or none, returns the new document, keeps
-- the key's TTL, and preserves numbers it does not touch exactly (even 64-bit IDs).
-- json_extract and the other JSON functions of SQLite read the stored TEXT directly.
.headers on
.mode box --wrap 0
CREATE VIRTUAL TABLE docs USING feox;
INSERT INTO docs(key, value) VALUES
  ('doc:users:1', '{"name":"Ada","email":"ada@example.com","roles":["admin"],"id":9007199254740993}'),
  ('doc:users:2', '{"name":"Grace","email":"grace@example.com","roles":[],"id":2}'),
  ('doc:orders:1', '{"user":1,"items":[{"sku":"A1","qty":1}],"status":"new"}');

.print '-- query documents: a prefix range over one collection, fields with json_extract'
SELECT key, json_extract(value, '$.name') AS name, json_array_length(value, '$.roles') AS roles
  FROM docs WHERE key GLOB 'doc:users:*' ORDER BY key;

.print '-- add, replace, remove; the 64-bit id is kept exactly'
SELECT feox_patch('docs', 'doc:users:1', '[
  {"op": "add",     "path": "/roles/-", "value": "editor"},
  {"op": "replace", "path": "/email",   "value": "ada@lovelace.org"},
  {"op": "remove",  "path": "/roles/0"}
]') AS user_1;

.print '-- move and copy between fields, and append to a nested array'
SELECT feox_patch('docs', 'doc:orders:1', '[
  {"op": "add",  "path": "/items/-", "value": {"sku": "B7", "qty": 2}},
  {"op": "copy", "from": "/status",  "path": "/previous_status"},
  {"op": "replace", "path": "/status", "value": "paid"},
  {"op": "move", "from": "/user",    "path": "/customer"}
]') AS order_1;

.print '-- optimistic concurrency: "test" first, so the patch applies only to the state we read'
SELECT feox_patch('docs', 'doc:orders:1', '[
  {"op": "test",    "path": "/status", "value": "paid"},
  {"op": "replace", "path": "/status", "value": "shipped"}
]') AS shipped;
.print '-- a stale "test" fails the whole patch with an error, and the document is unchanged'
.bail off
SELECT feox_patch('docs', 'doc:orders:1', '[
  {"op": "replace", "path": "/status", "value": "cancelled"},
  {"op": "test",    "path": "/status", "value": "new"}
]') AS cancelled;
SELECT json_extract(value, '$.status') AS status, json_array_length(value, '$.items') AS items
  FROM docs WHERE key = 'doc:orders:1';

.print '-- aggregate over a collection with plain SQL'
SELECT sum(json_extract(item.value, '$.qty')) AS units_ordered
  FROM docs, json_each(docs.value, '$.items') AS item
 WHERE docs.key GLOB 'doc:orders:*';
