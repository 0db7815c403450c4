-- A rejection is keyed by its position among the file's results (services.intake.domain.split_results), so an
-- envelope error and a bad transaction of the same file are both recorded; the column keeps its old name.
COMMENT ON COLUMN intake.rejections.transaction_index IS
    'position of the error among the file''s results (1-based, unique per file); the transaction''s own index '
    'is in location';
