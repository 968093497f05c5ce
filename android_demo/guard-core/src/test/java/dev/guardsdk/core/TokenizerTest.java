package dev.guardsdk.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Tokenizer files the app cannot run are refused by name; bad text and bad thresholds are refused too. */
class TokenizerTest {
  private static final String VOCAB = "{\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2, \"a\": 3, \"##b\": 4}";
  private static final String BERT_PARTS = "\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": true,"
      + " \"strip_accents\": null, \"clean_text\": true, \"handle_chinese_chars\": true},"
      + " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"added_tokens\": [],";

  private static String wordPiece(String postProcessor) {
    return "{" + BERT_PARTS + " \"post_processor\": " + postProcessor + ", \"model\": {\"type\": \"WordPiece\","
        + " \"unk_token\": \"[UNK]\", \"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 100,"
        + " \"vocab\": " + VOCAB + "}}";
  }

  @Test
  void unigramIsRefusedByName() {
    String unigram = "{" + BERT_PARTS + " \"post_processor\": null,"
        + " \"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"[UNK]\", 0.0]]}}";
    GuardException e = assertThrows(GuardException.class, () -> WordPieceTokenizer.parse(unigram));
    assertEquals(GuardException.Reason.UNSUPPORTED_TOKENIZER, e.reason());
    assertTrue(e.getMessage().contains("Unigram") && e.getMessage().contains("WordPiece"), e.getMessage());
  }

  @Test
  void anotherNormalizerIsRefusedByName() {
    String nfkc = wordPiece("null").replace("\"type\": \"BertNormalizer\"", "\"type\": \"NFKC\"");
    GuardException e = assertThrows(GuardException.class, () -> WordPieceTokenizer.parse(nfkc));
    assertEquals(GuardException.Reason.UNSUPPORTED_TOKENIZER, e.reason());
    assertTrue(e.getMessage().contains("NFKC"), e.getMessage());
  }

  @Test
  void anUnknownPostProcessorIsRefusedByName() {
    String roberta = wordPiece("{\"type\": \"RobertaProcessing\", \"sep\": [\"[SEP]\", 2], \"cls\": [\"[CLS]\", 1]}");
    GuardException e = assertThrows(GuardException.class, () -> WordPieceTokenizer.parse(roberta));
    assertEquals(GuardException.Reason.UNSUPPORTED_TOKENIZER, e.reason());
    assertTrue(e.getMessage().contains("RobertaProcessing"), e.getMessage());
  }

  @Test
  void bertProcessingLaysOutLikeItsTemplate() throws GuardException {
    WordPieceTokenizer t = WordPieceTokenizer.parse(
        wordPiece("{\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 2], \"cls\": [\"[CLS]\", 1]}"));
    assertArrayEquals(new int[] {3, 4, 0}, t.encode("AB xyz"));
    assertEquals(2, t.single.specials);
    assertEquals(3, t.pair.specials);
    assertEquals(1, t.pair.parts.get(3).sequence);
    assertEquals(1, t.pair.parts.get(3).typeId);
  }

  @Test
  void aNormalizedAddedTokenMatchesByItsNormalizedContentAndAnEmptyOneIsSkipped() throws GuardException {
    String added = "\"added_tokens\": [{\"id\": 5, \"content\": \"AB\", \"normalized\": true},"
        + " {\"id\": 6, \"content\": \"\", \"normalized\": false}],";
    WordPieceTokenizer t = WordPieceTokenizer.parse(wordPiece("null").replace("\"added_tokens\": [],", added));
    // what Python's tokenizers gives for the same tokenizer.json
    assertArrayEquals(new int[] {5, 0, 5}, t.encode("AB xyz ab"));
    assertArrayEquals(new int[] {5}, t.encode("aB"));
    assertArrayEquals(new int[] {5, 0}, t.encode("abb"));
  }

  @Test
  void aPairTemplatePlacingOneTextThreeTimesIsRefused() {
    String seq = "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}";
    String thrice = wordPiece("{\"type\": \"TemplateProcessing\", \"special_tokens\": {}, \"single\": [" + seq
        + "], \"pair\": [" + seq + ", " + seq + ", " + seq + "]}");
    GuardException e = assertThrows(GuardException.class, () -> WordPieceTokenizer.parse(thrice));
    assertEquals(GuardException.Reason.UNSUPPORTED_TOKENIZER, e.reason());
    assertTrue(e.getMessage().contains("exactly once"), e.getMessage());
  }

  @Test
  void malformedJsonIsAManifestRefusal() {
    GuardException e = assertThrows(GuardException.class, () -> WordPieceTokenizer.parse("{\"model\": "));
    assertEquals(GuardException.Reason.MANIFEST, e.reason());
  }

  @Test
  void loneSurrogatesAndMissingTextAreInputRefusals() {
    assertEquals(GuardException.Reason.INPUT,
        assertThrows(GuardException.class, () -> TextEncoder.checkText("ok \uD83D then", "the prompt")).reason());
    assertEquals(GuardException.Reason.INPUT,
        assertThrows(GuardException.class, () -> TextEncoder.checkText("\uDE00", "the prompt")).reason());
    assertEquals(GuardException.Reason.INPUT,
        assertThrows(GuardException.class, () -> TextEncoder.checkText(null, "the prompt")).reason());
  }

  @Test
  void aPairedEmojiIsValidText() throws GuardException {
    assertEquals("hi \uD83D\uDE00", TextEncoder.checkText("hi \uD83D\uDE00", "the prompt"));
  }
}
