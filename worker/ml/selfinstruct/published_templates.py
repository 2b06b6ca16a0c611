"""The published few-shot template texts (Self-Instruct steps 2 and 3, Alpaca's ``prompt.txt``),
verbatim data that ``step_prompts.py`` builds each step's prompt from.

Headers, record formats, separators and endings follow the published templates exactly (see
../shared/reference/self_instruct_spec.md): ``Task: <instruction>\\nIs it classification? Yes|No``
blocks separated by a blank line and ending in ``Task:``; output-first classification examples
(``Class label:`` then the input fields); input-first generation examples (``Example 1`` ...
``Output:``, or a direct ``Output:``). The reference spec quotes only the opening examples of
these templates; those are reproduced verbatim, and the remaining worked examples were written
for lorafleet in the same format. ``ALPACA_PROMPT_TXT`` is Alpaca's ``prompt.txt`` verbatim,
typos and numbering included (the released data was generated with it).
"""
from __future__ import annotations

import hashlib

_CLF_EXAMPLES: list[tuple[str, str]] = [
    ("Given my personality and the job, tell me if I would be suitable.", "Yes"),
    ("Give me an example of a time when you had to use your sense of humor.", "No"),
    ("Replace the placeholders in the given text with appropriate named entities.", "No"),
    ("Decide whether the email is spam or not spam.", "Yes"),
    ("Write a short poem about the sea in the style of a sailor's song.", "No"),
    ("Is the following statement true or false?", "Yes"),
    ("Tell me the main idea of the paragraph in one sentence.", "No"),
    ("Detect the language of the given sentence.", "Yes"),
    ("Suggest three names for a new coffee shop.", "No"),
    ("Which of the two options is cheaper per unit?", "Yes"),
    ("Explain how a bill becomes a law in your own words.", "No"),
    ("Classify the movie review as positive, negative, or neutral.", "Yes"),
    ("Convert the given temperature from Celsius to Fahrenheit.", "No"),
    ("Does the sentence contain a grammatical error? Answer yes or no.", "Yes"),
    ("Plan a three-day trip to a city you have never visited.", "No"),
    ("Identify whether the number is prime.", "Yes"),
    ("Rewrite the sentence so that it sounds more polite.", "No"),
    ("Given a news headline, tell which section of the newspaper it belongs to: sports, politics, business "
     + "or science.", "Yes"),
    ("Come up with a catchy slogan for a recycling campaign.", "No"),
    ("Tell whether the two sentences mean the same thing.", "Yes"),
    ("Summarize the following meeting notes.", "No"),
    ("Find the odd one out in the list of words.", "Yes"),
    ("Answer the trivia question and explain your answer.", "No"),
    ("Given a set of numbers, find all possible subsets that sum to a given number.", "No"),
]

CLF_TEMPLATE = (
    "Can the following task be regarded as a classification task with finite output labels?\n\n"
    + "".join(f"Task: {task}\nIs it classification? {label}\n\n" for task, label in _CLF_EXAMPLES)
    + "Task:"
)

OUTPUT_FIRST_TEMPLATE_FOR_CLF = """Given the classification task definition and the class labels, generate an input that corresponds to each of the class labels. If the task doesn't require input, just generate possible class labels.

Task: Classify the sentiment of the sentence into positive, negative, or mixed.
Class label: mixed
Sentence: I enjoy the flavor of the restaurant but their service is too slow.
Class label: Positive
Sentence: I had a great day today. The weather was beautiful and I spent time with friends and family.
Class label: Negative
Sentence: I was really disappointed by the latest superhero movie. I would not recommend it to anyone.

Task: Tell whether the email is spam.
Class label: Spam
Email: Congratulations! You have won a free cruise. Click the link and enter your card number to claim it.
Class label: Not spam
Email: Hi Dana, the team meeting moves to 3 pm on Thursday. Please bring the budget draft.

Task: Is the number even or odd?
Class label: Even
Number: 184
Class label: Odd
Number: 37

Task: Decide whether the second sentence follows from the first one.
Class label: Yes
Sentence 1: All the cookies in the jar are oatmeal cookies.
Sentence 2: The cookie I took from the jar is an oatmeal cookie.
Class label: No
Sentence 1: Maria bought a new bicycle last week.
Sentence 2: Maria rides her bicycle to work every day.

Task: Which planet is the largest in the solar system? (a) Mars (b) Jupiter (c) Earth (d) Venus
Class label: (b)

Task: Detect the language of the sentence.
Class label: French
Sentence: Je voudrais un café, s'il vous plaît.
Class label: Spanish
Sentence: La biblioteca abre a las nueve de la mañana.
Class label: German
Sentence: Wir fahren morgen mit dem Zug nach Berlin.

Task: Which of the following is not an input type? (a) number (b) date (c) phone number (d) email address (e) all of these are valid inputs.
Class label: (e)

Task:"""

INPUT_FIRST_TEMPLATE_FOR_GEN = """Come up with examples for the following tasks. Try to generate multiple examples when possible. If the task doesn't require additional input, you can generate the output directly.

Task: Which exercises are best for reducing belly fat at home?
Output:
- Lying Leg Raises
- Leg In And Out
- Plank
- Side Plank
- Sit-ups

Task: Sort the given list ascendingly. 
Example 1
List: [10, 92, 2, 5, -4, 92, 5, 101]
Output: [-4, 2, 5, 5, 10, 92, 92, 101]
Example 2
Input 2 - List: [9.99, 10, -5, -1000, 5e6, 999]
Output: [-1000, -5, 9.99, 10, 999, 5e6]

Task: Turn the sentence into a question.
Example 1
Sentence: The museum opens at nine on Sundays.
Output: Does the museum open at nine on Sundays?
Example 2
Sentence: Tom has finished his homework.
Output: Has Tom finished his homework?

Task: Suggest a name for a friendly robot in a children's story.
Output: Bolt the Helper

Task: Summarize the paragraph in one sentence.
Example 1
Paragraph: The town library will close for two weeks in August while workers replace the roof and repair the heating. Borrowed books can be returned at the town hall during that time, and the children's reading club will meet in the park.
Output: The library closes for two weeks in August for repairs, with returns at the town hall and the reading club moving to the park.

Task: Write a thank-you note to a neighbour who watered your plants.
Output:
Dear Mrs. Lee,
Thank you so much for watering my plants while I was away. They look happier than ever, and I really appreciate your kindness.
Best wishes,
[Your Name]

Task:"""

ALPACA_PROMPT_TXT = """You are asked to come up with a set of 20 diverse task instructions. These task instructions will be given to a GPT model and we will evaluate the GPT model for completing the instructions.

Here are the requirements:
1. Try not to repeat the verb for each instruction to maximize diversity.
2. The language used for the instruction also should be diverse. For example, you should combine questions with imperative instrucitons.
3. The type of instructions should be diverse. The list should include diverse types of tasks like open-ended generation, classification, editing, etc.
2. A GPT language model should be able to complete the instruction. For example, do not ask the assistant to create any visual or audio output. For another example, do not ask the assistant to wake you up at 5pm or set a reminder because it cannot perform any action.
3. The instructions should be in English.
4. The instructions should be 1 to 2 sentences long. Either an imperative sentence or a question is permitted.
5. You should generate an appropriate input to the instruction. The input field should contain a specific example provided for the instruction. It should involve realistic data and should not contain simple placeholders. The input should provide substantial content to make the instruction challenging but should ideally not exceed 100 words.
6. Not all instructions require input. For example, when a instruction asks about some general information, "what is the highest peak in the world", it is not necssary to provide a specific context. In this case, we simply put "<noinput>" in the input field.
7. The output should be an appropriate response to the instruction and the input. Make sure the output is less than 100 words.

List of 20 tasks:"""


def template_hash(*parts: str) -> str:
    """Short stable hash identifying a prompt template (recorded in provenance and request ids)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]
