//! The Porter stemmer against NLTK 3.10.4 (`nltk.stem.porter.PorterStemmer().stem(word)`, the
//! stemmer rouge-score 0.1.2 uses with `use_stemmer=True`).
//!
//! The table below was produced with NLTK 3.10.4 on a sample of the words ROUGE stems (tokens
//! longer than three characters): one word per three-letter ending and outcome (changed or not)
//! from the all-MiniLM-L6-v2 vocabulary, the AlpacaEval answers and the reference generations in
//! `../shared/reference/similarity/`, plus the examples of Porter's paper and NLTK's irregular
//! forms. Format: `word stem` pairs separated by spaces.

use quantlab_evaluate::similarity::porter::stem;

const NLTK_STEMS: &str = "\
0kcal 0kcal 15th 15th 1720 1720 17th 17th 1840s 1840 1850s 1850 1870s 1870 1880s 1880 1900s 1900
1920s 1920 1960s 1960 1990s 1990 19th 19th 2010s 2010 2023 2023 2024s 2024 2030s 2030 23rd 23rd
30fps 30fp 34th 34th 38th 38th 400mg 400mg 41st 41st 42nd 42nd 500g 500g 56th 56th 70th 70th
8000 8000 abbas abba abcdefghijklmnop abcdefghijklmnop accuracy accuraci acidosis acidosi
acne acn acronym acronym activate activ adam adam adapts adapt adds add adele adel
adenosine adenosin adjunct adjunct adjustable adjust adjustment adjust adolph adolph
adoption adopt adverbs adverb adzuki adzuki afterlife afterlif agnes agn agony agoni agreed agre
aground aground agustin agustin aide aid aimee aime airborne airborn airbus airbu
airlift airlift airliner airlin akakaze akakaz akbar akbar akoya akoya alberta alberta
alberto alberto albums album alexander alexand alexandre alexandr alexis alexi algae alga
algebraic algebra algonquin algonquin allie alli allowance allow almeida almeida
almighty almighti alphabet alphabet alps alp alternates altern alvaro alvaro ambush ambush
america america americas america among among amplitude amplitud anaheim anaheim
analogousli analog analyze analyz ancho ancho anchor anchor anchovy anchovi andalusia andalusia
andersson andersson andy andi anglia anglia angulariti angular anomaly anomali
anthropomorphic anthropomorph antigua antigua antivirus antiviru antonopoulos antonopoulo
anya anya apis api approached approach arabia arabia arabic arab aragon aragon
archaeology archaeolog archduke archduk archipelago archipelago arcs arc area area argh argh
args arg argued argu argyll argyl arrange arrang arrival arriv artemis artemi arthritis arthriti
arthur arthur asbestos asbesto ashe ash asset asset assignee assigne asterisk asterisk
astronaut astronaut astronauts astronaut asylum asylum asyncio asyncio attend attend
attendees attende auburn auburn audio audio audra audra augusto augusto avery averi
avogadro avogadro avril avril awake awak award award axle axl azerbaijan azerbaijan aztecs aztec
baba baba baby babi backups backup bacon bacon baffert baffert ballot ballot balm balm
bandwidth bandwidth banksy banksi barbados barbado barney barney baronetcy baronetci barr barr
bart bart basalt basalt basel basel bask bask battleship battleship beaumont beaumont
beckon beckon beefy beefi began began behalf behalf beige beig bela bela believer believ
bellamy bellami bellevue bellevu benhaddou benhadd benin benin benoit benoit bermensch bermensch
bernardo bernardo betsy betsi beverly beverli bharatiya bharatiya bianca bianca bibs bib
bide bide bien bien bike bike birthdays birthday blackpool blackpool blacks black blade blade
blanco blanco blazer blazer blit blit blockchain blockchain blogosphere blogospher blonde blond
blue blue blueprint blueprint boca boca bogota bogota boldregex boldregex bolsheviks bolshevik
books book boos boo boot boot booze booz bordeaux bordeaux bourbon bourbon
bournemouth bournemouth bowdlerize bowdler bowen bowen bowie bowi boxed box boycott boycott
boyd boyd bracelets bracelet brahms brahm brassicaceae brassicacea bratislava bratislava
brawls brawl breadcrumbs breadcrumb breakthebias breakthebia bretagne bretagn brett brett
bribe bribe briggs brigg brin brin bristol bristol british british bronze bronz browne brown
browse brows brushstroke brushstrok built built bulbs bulb bulldogs bulldog bundle bundl
bury buri bushes bush bushy bushi butte butt buttermilk buttermilk caesar caesar cafe cafe
cafes cafe caffe caff calculus calculu calcutta calcutta caldwell caldwel
californicus californicu call call callahan callahan callousness callous canada canada
canberra canberra canning canning cannings canning canoe cano canvas canva carlsbad carlsbad
carmel carmel carp carp carpathian carpathian casino casino cassidy cassidi castro castro
catchy catchi caulk caulk cease ceas cecil cecil cedar cedar cerebral cerebr chainsaw chainsaw
chamomile chamomil champs champ chao chao chaos chao char char characterbody characterbodi
cheap cheap cheeky cheeki cheesy cheesi cheng cheng chestnut chestnut chevy chevi chewy chewi
chihuahuas chihuahua china china choir choir chop chop christophe christoph churchill churchil
citadel citadel clam clam clamato clamato clarke clark clasp clasp classify classifi
claudius claudiu claus clau clive clive close close clouds cloud coal coal coalesce coalesc
cockpit cockpit coffee coffe collaborators collabor collapse collaps colombo colombo
colorful color colossal coloss colt colt columns column coma coma comb comb combos combo
comet comet comfy comfi commissioner commission communism commun company compani complex complex
complexe complex comte comt conceived conceiv concepcion concepcion concertgoer concertgo
concord concord conditional condit condor condor conduit conduit conflated conflat
conformabli conform connecticut connecticut connue connu conrad conrad consciously conscious
consumer consum control control controll control controversy controversi convey convey
cooldown cooldown copyright copyright corbin corbin cortex cortex costa costa couch couch
could could cousin cousin cozy cozi craic craic creepy creepi crewe crew crfs crf crime crime
crimp crimp crispy crispi crochet crochet crops crop crowds crowd crowe crow crust crust
crypt crypt cryptography cryptographi crystals crystal culture cultur curls curl curr curr
curt curt cutoff cutoff cvts cvt cxsast cxsast cypriot cypriot cytoplasm cytoplasm
czechoslovakia czechoslovakia daisy daisi dallas dalla daphne daphn darby darbi darryl darryl
davis davi davy davi debts debt debussy debussi decades decad december decemb decisiveness decis
deer deer default default defensible defens delete delet deluxe delux demeanor demeanor
demi demi demo demo deny deni dependent depend deposed depos depot depot deputy deputi
dequeue dequeu destroyrenderer destroyrender destroys destroy destruct destruct dharma dharma
diablo diablo diarrhea diarrhea died die dies die differentli differ digitalglobe digitalglob
digitizer digit dimbleby dimblebi diophantus diophantu diplomat diplomat directly directli
directory directori disbelief disbelief discharged discharg discordjs discordj discs disc
dismiss dismiss dispatch dispatch dispenser dispens dispose dispos dissertation dissert
dissolve dissolv disturbed disturb dixon dixon dizzy dizzi docs doc doll doll dominic domin
dona dona donald donald doncaster doncast donegal doneg doris dori dorm dorm dorsal dorsal
doughy doughi downlink downlink download download downtempo downtempo dowry dowri dozen dozen
dpfs dpf draft draft drama drama drape drape drip drip driveway driveway drop drop drow drow
drum drum drunken drunken ducs duc duet duet duffy duffi dumb dumb duncan duncan dundee dunde
dunlop dunlop duolingo duolingo dusk dusk dvds dvd dwarf dwarf dyer dyer dyes dye dying die
earl earl earle earl eastern eastern echoes echo economy economi ecowas ecowa edwards edward
eeee eeee effective effect ehrs ehr eiffel eiffel eigenvalues eigenvalu elder elder
electrical electr electriciti electr elisa elisa elsie elsi embryos embryo emerge emerg
emilio emilio emir emir emmy emmi emojis emoji emperor emperor employ employ employed employ
employee employe employer employ empty empti enabler enabl encode encod endeavor endeavor
energy energi enjoy enjoy ensign ensign entail entail envelope envelop envy envi enzo enzo
enzyme enzym episcopal episcop epochs epoch erebidae erebida erie eri ernie erni ernst ernst
eschews eschew esme esm esplandi esplandi essen essen essex essex ethereum ethereum euros euro
everdeen everdeen everyday everyday evil evil exceed exceed excels excel exchequer exchequ
existentialists existentialist export export exterior exterior extravaganza extravaganza
eyewear eyewear eyre eyr faculty faculti fahrenheit fahrenheit failing fail falling fall
familiarity familiar farbe farb fargo fargo farthest farthest fashionable fashion faults fault
faye fay feed feed fefefe fefef fein fein fergus fergu fernandez fernandez fertilizer fertil
feudalism feudal fiancee fiance fifty fifti filing file fille fill filler filler fillet fillet
finale final findbugs findbug finden finden finn finn fintech fintech firefox firefox
firstflakes firstflak fitz fitz fizzed fizz flatten flatten flaw flaw flinch flinch flip flip
flows flow flute flute flynn flynn folk folk follow follow foodie foodi fools fool forgot forgot
formaliti formal formalize formal formative form foundry foundri francais francai fraud fraud
fred fred frederic freder fredrik fredrik frenzy frenzi freshen freshen frisbee frisbe from from
fuck fuck fully fulli fungal fungal furry furri gabby gabbi gabriel gabriel gael gael
gaelic gaelic gage gage gainsay gainsay galaxy galaxi galen galen galilee galile garc garc
garcia garcia gate gate gauge gaug gave gave gayle gayl gaze gaze gears gear
geeksforgeeks geeksforgeek gejrot gejrot gemma gemma gene gene genealogical genealog
generously gener genome genom genre genr genus genu geologic geolog geology geolog
geometry geometri gesceaftas gesceafta geschichte geschicht ghetto ghetto gigs gig
giuseppe giusepp glad glad gladys gladi gloucestershire gloucestershir glove glove goethe goeth
goodbye goodby goodness good goodwin goodwin goofy goofi gossipy gossipi gotham gotham grab grab
gracie graci graffiti graffiti grammar grammar granulomas granuloma grapeseed grapese
gravel gravel greco greco greeted greet greta greta griffin griffin grimsby grimsbi
grizzly grizzli grna grna groan groan groom groom groove groov gross gross groupby groupbi
guadalajara guadalajara guantanamo guantanamo guido guido guild guild guildid guildid
gujarat gujarat guyana guyana guys guy gypsy gypsi gyroscopic gyroscop habitat habitat
hadley hadley hahn hahn haifa haifa hairy hairi handgun handgun hannah hannah hannibal hannib
happy happi hari hari harm harm harrisburg harrisburg hashtags hashtag hassan hassan havre havr
hawk hawk hawke hawk hazy hazi heavenly heavenli hebrew hebrew heel heel hello hello helo helo
helped help heme heme hendrix hendrix herbalist herbalist herr herr hesitanci hesit
heterosexual heterosexu hilda hilda himalayas himalaya hind hind hindus hindu hirundo hirundo
hissing hiss hobbs hobb holdin holdin hollis holli holm holm home home homeostatic homeostat
homeworld homeworld homme homm homo homo homologou homolog homologous homolog honneur honneur
honshu honshu hope hope hopeful hope hopefulli hope hopefulness hope hopping hop
horseshoe horsesho host host hour hour howe howe https http hull hull hume hume humid humid
hummingbird hummingbird humphrey humphrey hundreds hundr hungry hungri hybrid hybrid
hybrids hybrid hydrogen hydrogen hydrothermal hydrotherm hyogo hyogo icelandic iceland
identifiers identifi illicit illicit immense immens immune immun impede imped inbox inbox
incite incit incognito incognito indigo indigo indis indi infants infant inference infer
inhibitor inhibitor inject inject inky inki inning inning innings inning instituto instituto
interacts interact intercept intercept internshiphunt internshiphunt interrupt interrupt
intranet intranet invalid invalid ipad ipad irene iren irim irim iron iron irritant irrit
isaiah isaiah isil isil isle isl isprime isprim italics ital ivan ivan jack jack jaipur jaipur
jalape jalap janeiro janeiro jaya jaya jealousy jealousi jewel jewel jewelry jewelri
jimenez jimenez jimi jimi jimmie jimmi jira jira joel joel johns john joyce joyc juan juan
judaism judaism judeo judeo judy judi juicer juicer july juli june june junk junk junkie junki
jurassic jurass kala kala kale kale kamen kamen kaneohe kaneoh kansas kansa kanye kany
karlsruhe karlsruh katsuren katsuren katy kati kaufman kaufman kawasaki kawasaki kawena kawena
kbps kbp keenan keenan kellan kellan kendrick kendrick kenji kenji kennedy kennedi
kenneth kenneth keyhole keyhol kilograms kilogram kinda kinda kingdom kingdom kirk kirk
knead knead knife knife kobayashi kobayashi kolby kolbi krispie krispi kuwait kuwait kyle kyle
ladysmith ladysmith lagos lago lame lame lance lanc langsumne langsumn larvae larva
lasagna lasagna layla layla leafs leaf leafy leafi leapt leapt legitimate legitim legs leg
lehigh lehigh lentil lentil leroy leroy leto leto letsdothis letsdothi lewis lewi lexie lexi
leyte leyt liar liar liga liga lima lima links link liquid liquid lithium lithium lobe lobe
locke lock loft loft logarithm logarithm loin loin lois loi lola lola lone lone lore lore
lorem lorem loud loud lstms lstm luce luce lucifer lucif lucknow lucknow lucy luci luis lui
lukas luka lulu lulu lupita lupita luzon luzon lying lie macabre macabr maccabi maccabi
macedonia macedonia macintosh macintosh mackenzie mackenzi maclean maclean madly madli
maggie maggi magic magic magnum magnum maharaja maharaja malachi malachi malbolge malbolg
manifold manifold manny manni mansfield mansfield manta manta mantras mantra manuel manuel
marcos marco mare mare marek marek margaret margaret marianne mariann marilyn marilyn mark mark
markus marku martha martha martyrs martyr marvin marvin masonry masonri massey massey
massimo massimo masterpiece masterpiec matisse matiss matthew matthew maybe mayb mbube mbube
mccarthy mccarthi mcgraw mcgraw mclaughlin mclaughlin mcqs mcq meath meath mecca mecca
medusa medusa meet meet meiji meiji mellah mellah melme melm mental mental mercutio mercutio
mercy merci merritt merritt mesa mesa mesh mesh mesopotamia mesopotamia mesozoic mesozo
messenger messeng mfccs mfcc michel michel microgreens microgreen microwave microwav mikey mikey
milestone mileston militia militia mill mill milne miln mimicry mimicri minas mina mine mine
minty minti minuscule minuscul missteps misstep mkdir mkdir mmorpgs mmorpg mobs mob mocha mocha
moldova moldova momentarily momentarili monopoly monopoli monroe monro montague montagu
montane montan moonbeam moonbeam mori mori motifs motif mountaintop mountaintop movie movi
mughal mughal muhammad muhammad mukherjee mukherje mule mule mural mural murdoch murdoch
murky murki muse muse music music muzzle muzzl mymodal mymod mystic mystic nachos nacho
nacre nacr nadia nadia naga naga napoli napoli narayan narayan nascar nascar natasha natasha
national nation nazis nazi neck neck negro negro neighbor neighbor nelsoni nelsoni nero nero
netflix netflix netherlands netherland neuro neuro newly newli news news newsweek newsweek
nexus nexu nico nico nietzsche nietzsch nijinsky nijinski ninety nineti nippon nippon
nobel nobel nondescript nondescript normal normal numpy numpi nuns nun nutrient nutrient
obliquus obliquu oboe obo occupy occupi octet octet odde odd odessa odessa officer offic
ohio ohio okay okay olympia olympia onready onreadi opaque opaqu openai openai operator oper
optimism optim opus opu orchestra orchestra organizationid organizationid origin origin
ortega ortega osso osso ourselves ourselv outburst outburst outing outing outings outing
outlaws outlaw oval oval overlap overlap overleaf overleaf overlook overlook overwhelm overwhelm
owes owe paas paa pacs pac paddy paddi pagerank pagerank pagoda pagoda painter painter
palma palma palo palo papal papal paprika paprika paradox paradox parapet parapet parcel parcel
parts part party parti pass pass passage passag passages passag passes pass passionately passion
payne payn peaky peaki pearce pearc peas pea penis peni penthouse penthous
peppercorns peppercorn perez perez perkins perkin permit permit persistent persist
personae persona peshawar peshawar phantom phantom phenomenon phenomenon phevs phev
philanthropic philanthrop phoebe phoeb phonograph phonograph photographs photograph
phrase phrase pianos piano piccolo piccolo picked pick pickup pickup piet piet pigeon pigeon
pile pile place place placemats placemat plateau plateau playboy playboy please pleas
pledge pledg plump plump poems poem polisher polish polosukhin polosukhin ponderosa ponderosa
poor poor porte port portrayal portray postgresql postgresql powerofthree powerofthre ppps ppp
practice practic predication predic presume presum prisons prison privy privi probate probat
problem problem proceed proceed prodigy prodigi professor professor profit profit
prolific prolif promenade promenad promote promot pronoun pronoun prophecy propheci
prospectiva prospectiva protectant protect protege proteg proto proto prototype prototyp
proverb proverb psychic psychic publicly publicli pubs pub puff puff puffed puf puget puget
pulled pull pulse puls punctual punctual purdue purdu pypy pypi python python pytorch pytorch
qualifier qualifi quickly quickli quizzes quizz quran quran rabbis rabbi rabbit rabbit
radicalli radic raid raid rainbow rainbow raise rais ramos ramo ramotswe ramotsw rann rann
rate rate rational ration ratios ratio raul raul raven raven rayon rayon react react
realms realm reattach reattach recipe recip reclaim reclaim reclusive reclus recognize recogn
recovered recov recycle recycl reddit reddit redeem redeem reduce reduc redwood redwood
reed reed referenced referenc refugee refuge regis regi reissue reissu relational relat
relay relay reliably reliabl reliefs relief relieve reliev reopened reopen repair repair
repel repel replacement replac reporting report reprogrammed reprogram rescue rescu
reseal reseal reshapes reshap resolute resolut restore restor revival reviv rhymes rhyme
rhys rhi ribeye ribey rich rich richer richer richly richli ricky ricki ripple rippl
riviera riviera rnns rnn roam roam rocker rocker rolf rolf roll roll romani romani roofer roofer
roofs roof rooms room roosevelt roosevelt rosenthal rosenth rosy rosi rover rover rowan rowan
roxy roxi ruben ruben ruby rubi rude rude rufus rufu rugby rugbi rumours rumour russ russ
sainte saint saldivar saldivar salmon salmon salon salon salsa salsa sambal sambal
samsung samsung sanskrit sanskrit saratoga saratoga satan satan satisfy satisfi
saucepan saucepan sauna sauna sauropods sauropod savanna savanna savoy savoy savvy savvi
saxe sax scenario scenario schnitzel schnitzel schooner schooner sciencetalk sciencetalk
scorer scorer scorn scorn scoundrel scoundrel scrap scrap scuba scuba sdrs sdr seahawks seahawk
second second sedan sedan seismic seismic sensibiliti sensibl sensitiviti sensit
sentimental sentiment sentinel sentinel serps serp serve serv settles settl setup setup
sevilla sevilla sewer sewer sexes sex sexy sexi sharpen sharpen shaw shaw shawn shawn
shecanstem shecanstem shelf shelf shell shell sheriff sheriff shia shia shielded shield
shields shield shimura shimura shiny shini ships ship shout shout show show siam siam
siamese siames siblings sibl sidereal sider signs sign sikhs sikh silky silki sims sim
simus simu site site sixty sixti skies sky skin skin skopje skopj sky sky skywalker skywalk
slab slab slabs slab sleep sleep slew slew slim slim slingshot slingshot slots slot
slovak slovak slugger slugger smoky smoki smyth smyth snake snake snoopdogg snoopdogg
snowy snowi soar soar socioeconomic socioeconom sock sock sodas soda sofie sofi soggy soggi
solar solar somali somali somber somber somewhat somewhat sonar sonar sonarqube sonarqub
sophie sophi soprano soprano souks souk soul soul souls soul sovngarde sovngard spaces space
spas spa speakeasy speakeasi special special spectroscopy spectroscopi spelaeus spelaeu
spicy spici spied spi spielte spielt splash splash splatoon splatoon spray spray squads squad
squeeze squeez squeezed squeez ssds ssd ssss ssss stab stab stacey stacey stainless stainless
stalks stalk stamp stamp standoffs standoff steadicam steadicam stealth stealth
steamboat steamboat stiffly stiffli stigma stigma stole stole stormcloak stormcloak storms storm
stormy stormi straits strait straps strap strategy strategi streaks streak
streetlights streetlight strict strict string string stripe stripe strlength strlength
strode strode structures structur stucco stucco stupid stupid subgroup subgroup
subscribe subscrib suburb suburb succeed succeed summer summer suneli sune superpower superpow
supply suppli supreme suprem sure sure surveys survey suzy suzi swansea swansea sweetie sweeti
symbolic symbol syncs sync synonyms synonym synth synth syria syria syriac syriac syzygy syzygi
tabasco tabasco tabloid tabloid tactileview tactileview tahini tahini tails tail talbot talbot
taliban taliban tanaka tanaka tangier tangier tangy tangi taourirt taourirt tasks task tata tata
tattooed tattoo telecom telecom telegram telegram tempt tempt tennessee tennesse terrace terrac
terre terr testid testid texas texa text text texts text theatre theatr theft theft them them
theology theolog therapy therapi there there theropod theropod thicket thicket thorpe thorp
threat threat three three thus thu ties tie title titl toby tobi toggle toggl toil toil
tokugawa tokugawa toledo toledo tonal tonal tonga tonga torah torah tornado tornado toro toro
towns town traditionalli tradit transit transit translator translat trelawny trelawni
tremor tremor triad triad triplicate triplic trolls troll troop troop troupe troup
truffle truffl trunchbull trunchbul trustee truste trusty trusti trvs trv tsunami tsunami
tubes tube tufts tuft tunic tunic turks turk turnpike turnpik tweak tweak twice twice
twinkle twinkl tying tie udemy udemi ugly ugli ulfric ulfric ultimatum ultimatum
undergrowth undergrowth underpin underpin uniformly uniformli uniqe uniq unit unit
universidad universidad unmarried unmarri unofficial unoffici unplug unplug unsafe unsaf
unto unto upper upper ursula ursula ursus ursu uruguay uruguay uscis usci user user usgs usg
ussuri ussuri vacancy vacanc vaes vae valenci valenc valiant valiant valor valor value valu
vasquez vasquez vegas vega vengerberg vengerberg verse vers vertebrae vertebra veterans veteran
veterinary veterinari victories victori vidal vidal videos video vietnamization vietnam
viewed view vigor vigor vila vila vileli vile virtue virtu virtuosos virtuoso viscous viscou
vitamin vitamin vitel vitel vivid vivid vlog vlog vogel vogel volleyball volleybal volta volta
volunteer volunt vora vora vote vote vulgar vulgar waikiki waikiki walkthrough walkthrough
wallpaper wallpap wand wand warn warn washcloth washcloth wasps wasp waste wast
waterproof waterproof watts watt webs web wehrmacht wehrmacht weighs weigh weil weil weir weir
welfare welfar wellness well wheelchairs wheelchair whimsy whimsi wholly wholli widow widow
wikis wiki wilde wild wildfowl wildfowl willoughby willoughbi wimbledon wimbledon
windowpos windowpo windup windup winstar winstar winston winston wire wire withdrawal withdraw
witticisms wittic witty witti woke woke wolfe wolf wordy wordi worth worth wouldn wouldn
wreaths wreath wryly wryli xskakgetgame xskakgetgam yamaha yamaha yankee yanke york york
yugoslavia yugoslavia yyyy yyyi zane zane zebra zebra zermatt zermatt zeroll zerol
zhejiang zhejiang zhou zhou zimbabwe zimbabw zombie zombi
";

#[test]
fn porter_matches_nltk_on_the_sample() {
    let toks: Vec<&str> = NLTK_STEMS.split_whitespace().collect();
    assert_eq!(toks.len() % 2, 0);
    assert!(
        toks.len() / 2 > 1500,
        "the sample has {} words",
        toks.len() / 2
    );
    let mut wrong = Vec::new();
    for p in toks.chunks(2) {
        let got = stem(p[0]);
        if got != p[1] {
            wrong.push(format!("{} -> {got} (NLTK: {})", p[0], p[1]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ: {:?}",
        wrong.len(),
        toks.len() / 2,
        wrong
    );
}
