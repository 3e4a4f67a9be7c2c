-- What My account shows of a session (R14, R4): the address it was opened
-- from and a coarse device name ("Firefox on Linux", never the raw
-- User-Agent), one ciphertext under the user's key. NULL for sessions opened
-- before this column and for operators.
ALTER TABLE sessions ADD COLUMN device BLOB;
