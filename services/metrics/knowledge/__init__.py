"""The knowledge base (聊天办) and the guidance from resolved cases: a read model of metrics
(see docs/knowledge.md). Articles are edited by the office through the command path; resolved
cases are projected from the case events; both are searched with Tantivy over jieba words."""
